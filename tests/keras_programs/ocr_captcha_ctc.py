# Source: "OCR model for reading Captchas" (A_K_Nain),
# https://keras.io/examples/vision/captcha_ocr/
# A CNN + bidirectional-LSTM model trained with a CTC loss added by a custom CTCLayer
# (self.add_loss, compile without a loss, two model inputs: image and label), EarlyStopping with
# restore_best_weights, and a prediction model cut out of the trained one
# (model.get_layer(...).output) whose outputs are decoded greedily.
# Adapted: the captcha images are not local: 400 generated 48x8 images of 4 characters drawn
# from a 3x5 pixel font plus noise; Python dicts instead of StringLookup (Keras's needs
# TensorFlow); the example's TensorFlow ctc_batch_cost / ctc_decode are keras.ops.ctc_loss /
# keras.ops.ctc_decode (Keras 3's backend-independent ops); LSTM 32/16 units instead of
# 128/64, Dense 32 instead of 64; 12 epochs of batch 16.
import numpy as np
import keras
from keras import layers
from keras import ops

# A 3x5 pixel font for the characters of the captchas.
FONT = {
    "2": ["111", "001", "111", "100", "111"],
    "3": ["111", "001", "011", "001", "111"],
    "4": ["101", "101", "111", "001", "001"],
    "5": ["111", "100", "111", "001", "111"],
    "7": ["111", "001", "010", "010", "010"],
    "c": ["000", "111", "100", "100", "111"],
}
characters = sorted(FONT)
print("Number of unique characters: ", len(characters))
print("Characters present: ", characters)

# Desired image dimensions
img_width = 48
img_height = 8
# Maximum length of any captcha in the dataset
max_length = 4

rng = np.random.default_rng(0)


def render(label):
    image = np.zeros((img_height, img_width), dtype="float32")
    x = rng.integers(0, 6)
    for char in label:
        glyph = np.array([[int(p) for p in row] for row in FONT[char]], dtype="float32")
        y = rng.integers(0, img_height - 4)
        image[y : y + 5, x : x + 3] = glyph
        x += 3 + rng.integers(6, 9)
    image += rng.normal(0, 0.15, size=image.shape)
    return np.clip(image, 0, 1)


labels = ["".join(rng.choice(characters, size=max_length)) for _ in range(400)]
images = np.array([render(label) for label in labels])

# Mapping characters to integers (0 is CTC's blank)
char_to_num = {char: i + 1 for i, char in enumerate(characters)}
# Mapping integers back to original characters
num_to_char = {i: char for char, i in char_to_num.items()}


def encode_single_sample(img, label):
    # Transpose the image because we want the time
    # dimension to correspond to the width of the image.
    img = np.transpose(img[..., None], (1, 0, 2))
    # Map the characters in label to numbers
    label = np.array([char_to_num[char] for char in label], dtype="float32")
    return {"image": img, "label": label}


samples = [encode_single_sample(img, label) for img, label in zip(images, labels)]
x_images = np.stack([s["image"] for s in samples])
x_labels = np.stack([s["label"] for s in samples])
split = 320
x_train = {"image": x_images[:split], "label": x_labels[:split]}
x_valid = {"image": x_images[split:], "label": x_labels[split:]}


def ctc_batch_cost(y_true, y_pred, input_length, label_length):
    label_length = ops.cast(ops.squeeze(label_length, axis=-1), dtype="int32")
    input_length = ops.cast(ops.squeeze(input_length, axis=-1), dtype="int32")
    y_pred = ops.log(y_pred + keras.backend.epsilon())
    return ops.expand_dims(
        ops.ctc_loss(ops.cast(y_true, "int32"), y_pred, label_length, input_length), 1
    )


class CTCLayer(layers.Layer):
    def __init__(self, name=None):
        super().__init__(name=name)
        self.loss_fn = ctc_batch_cost

    def call(self, y_true, y_pred):
        # Compute the training-time loss value and add it
        # to the layer using `self.add_loss()`.
        batch_len = ops.cast(ops.shape(y_true)[0], dtype="int64")
        input_length = ops.cast(ops.shape(y_pred)[1], dtype="int64")
        label_length = ops.cast(ops.shape(y_true)[1], dtype="int64")

        input_length = input_length * ops.ones(shape=(batch_len, 1), dtype="int64")
        label_length = label_length * ops.ones(shape=(batch_len, 1), dtype="int64")

        loss = self.loss_fn(y_true, y_pred, input_length, label_length)
        self.add_loss(ops.mean(loss))

        # At test time, just return the computed predictions
        return y_pred


def build_model():
    # Inputs to the model
    input_img = layers.Input(shape=(img_width, img_height, 1), name="image", dtype="float32")
    labels = layers.Input(name="label", shape=(None,), dtype="float32")

    # First conv block
    x = layers.Conv2D(
        16,
        (3, 3),
        activation="relu",
        kernel_initializer="he_normal",
        padding="same",
        name="Conv1",
    )(input_img)
    x = layers.MaxPooling2D((2, 2), name="pool1")(x)

    # Second conv block
    x = layers.Conv2D(
        32,
        (3, 3),
        activation="relu",
        kernel_initializer="he_normal",
        padding="same",
        name="Conv2",
    )(x)
    x = layers.MaxPooling2D((2, 2), name="pool2")(x)

    # We have used two max pool with pool size and strides 2.
    # Hence, downsampled feature maps are 4x smaller. The number of
    # filters in the last layer is 32. Reshape accordingly before
    # passing the output to the RNN part of the model
    new_shape = ((img_width // 4), (img_height // 4) * 32)
    x = layers.Reshape(target_shape=new_shape, name="reshape")(x)
    x = layers.Dense(32, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.2)(x)

    # RNNs
    x = layers.Bidirectional(layers.LSTM(32, return_sequences=True, dropout=0.25))(x)
    x = layers.Bidirectional(layers.LSTM(16, return_sequences=True, dropout=0.25))(x)

    # Output layer
    x = layers.Dense(len(characters) + 1, activation="softmax", name="dense2")(x)

    # Add CTC layer for calculating CTC loss at each step
    output = CTCLayer(name="ctc_loss")(labels, x)

    # Define the model
    model = keras.models.Model(inputs=[input_img, labels], outputs=output, name="ocr_model_v1")
    # Optimizer
    opt = keras.optimizers.Adam(learning_rate=0.005)
    # Compile the model and return
    model.compile(optimizer=opt)
    return model


# Get the model
model = build_model()
model.summary()

epochs = 12
early_stopping_patience = 10
# Add early stopping
early_stopping = keras.callbacks.EarlyStopping(
    monitor="val_loss", patience=early_stopping_patience, restore_best_weights=True
)

# Train the model
history = model.fit(
    x_train,
    validation_data=(x_valid,),
    epochs=epochs,
    batch_size=16,
    callbacks=[early_stopping],
)

# Get the prediction model by extracting layers till the output layer
prediction_model = keras.models.Model(model.input[0], model.get_layer(name="dense2").output)
prediction_model.summary()


# A utility function to decode the output of the network
def decode_batch_predictions(pred):
    input_len = np.ones(pred.shape[0]) * pred.shape[1]
    # Use greedy search. For complex tasks, you can use beam search
    results = ops.ctc_decode(pred, sequence_lengths=input_len, strategy="greedy")[0][0]
    results = ops.convert_to_numpy(results)[:, :max_length]
    # Iterate over the results and get back the text
    output_text = []
    for res in results:
        res = "".join(num_to_char.get(int(i), "") for i in res if i > 0)
        output_text.append(res)
    return output_text


preds = prediction_model.predict(x_valid["image"])
pred_texts = decode_batch_predictions(preds)
orig_texts = labels[split:]
for text, orig in list(zip(pred_texts, orig_texts))[:8]:
    print(f"Prediction: {text} | Label: {orig}")
char_accuracy = np.mean([sum(a == b for a, b in zip(p, o)) / max_length
                         for p, o in zip(pred_texts, orig_texts)])
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"val_loss={min(history.history['val_loss']):.4f} char_accuracy={char_accuracy:.4f} "
      f"decoded={len(pred_texts)} params={model.count_params()}")
