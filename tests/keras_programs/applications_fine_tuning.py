# Source: "Image classification via fine-tuning with EfficientNet" (Yixing Fu),
# https://keras.io/examples/vision/image_classification_efficientnet_fine_tuning/
# A keras.applications model trained from scratch (include_top=True, weights=None, classes=...),
# then the transfer-learning workflow: the application built with include_top=False on an
# input_tensor, frozen (model.trainable = False), a new top (GlobalAveragePooling2D on
# model.output, BatchNormalization, Dropout, softmax Dense) trained, then unfreeze_model: the top
# 20 layers made trainable except BatchNormalization, recompiled with a low learning rate.
# Augmentation layers (RandomRotation, RandomTranslation, RandomFlip, RandomContrast) applied to
# the training images, labels one-hot encoded.
# Adapted: EfficientNetB0 -> MobileNetV2(alpha=0.35) (a smaller application); its
# weights="imagenet" need a download this machine cannot make, so the transfer part uses
# weights=None (the workflow and the frozen / trainable weights are checked, not ImageNet
# features); Stanford Dogs -> 3 Fashion-MNIST classes padded to 32x32x3 (450 images);
# 3 + 1 + 1 epochs instead of 40 + 25 + 4; NumPy arrays instead of tf.data.
import numpy as np
import keras
from keras import layers

IMG_SIZE = 32
NUM_CLASSES = 3
batch_size = 32

(x_all, y_all), _ = keras.datasets.fashion_mnist.load_data()
keep = y_all < NUM_CLASSES
x_all = x_all[keep][:450].astype("float32")
y_all = y_all[keep][:450]
x_all = np.repeat(np.pad(x_all, ((0, 0), (2, 2), (2, 2)))[..., None], 3, axis=-1)
x_train, y_train = x_all[:360], y_all[:360]
x_test, y_test = x_all[360:], y_all[360:]

img_augmentation_layers = [
    layers.RandomRotation(factor=0.15),
    layers.RandomTranslation(height_factor=0.1, width_factor=0.1),
    layers.RandomFlip(),
    layers.RandomContrast(factor=0.1),
]


def img_augmentation(images):
    for layer in img_augmentation_layers:
        images = layer(images)
    return images


# One-hot / categorical encoding
def input_preprocess_train(image, label):
    image = keras.ops.convert_to_numpy(img_augmentation(image))
    label = keras.utils.to_categorical(label, NUM_CLASSES)
    return image, label


def input_preprocess_test(image, label):
    label = keras.utils.to_categorical(label, NUM_CLASSES)
    return image, label


ds_train = input_preprocess_train(x_train, y_train)
ds_test = input_preprocess_test(x_test, y_test)
augmented_changed = int(np.abs(ds_train[0] - x_train).mean() > 0)

# Training a model from scratch
model = keras.applications.MobileNetV2(
    include_top=True,
    weights=None,
    classes=NUM_CLASSES,
    alpha=0.35,
    input_shape=(IMG_SIZE, IMG_SIZE, 3),
)
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])

model.summary()
scratch_params = model.count_params()

epochs = 3
hist = model.fit(*ds_train, batch_size=batch_size, epochs=epochs, validation_data=ds_test)
scratch_history = hist.history


# Transfer learning from pre-trained weights
def build_model(num_classes):
    inputs = layers.Input(shape=(IMG_SIZE, IMG_SIZE, 3))
    model = keras.applications.MobileNetV2(
        include_top=False, input_tensor=inputs, weights=None, alpha=0.35
    )

    # Freeze the pretrained weights
    model.trainable = False

    # Rebuild top
    x = layers.GlobalAveragePooling2D(name="avg_pool")(model.output)
    x = layers.BatchNormalization()(x)

    top_dropout_rate = 0.2
    x = layers.Dropout(top_dropout_rate, name="top_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="pred")(x)

    # Compile
    model = keras.Model(inputs, outputs, name="MobileNetV2")
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    return model


model = build_model(num_classes=NUM_CLASSES)
frozen_trainable = len(model.trainable_weights)
base_before = [w.copy() for w in model.get_layer("Conv1").get_weights()]

epochs = 1
hist = model.fit(*ds_train, batch_size=batch_size, epochs=epochs, validation_data=ds_test)
frozen_unchanged = int(all(np.array_equal(a, b) for a, b in
                           zip(base_before, model.get_layer("Conv1").get_weights())))


def unfreeze_model(model):
    # We unfreeze the top 20 layers while leaving BatchNorm layers frozen
    for layer in model.layers[-20:]:
        if not isinstance(layer, layers.BatchNormalization):
            layer.trainable = True

    optimizer = keras.optimizers.Adam(learning_rate=1e-5)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])


unfreeze_model(model)
unfrozen_trainable = len(model.trainable_weights)
top_conv_before = model.get_layer("Conv_1").get_weights()[0].copy()

epochs = 1
hist = model.fit(*ds_train, batch_size=batch_size, epochs=epochs, validation_data=ds_test)
top_conv_changed = int(not np.array_equal(top_conv_before, model.get_layer("Conv_1").get_weights()[0]))
print(f"RESULT first_loss={scratch_history['loss'][0]:.4f} loss={scratch_history['loss'][-1]:.4f} "
      f"accuracy={scratch_history['accuracy'][-1]:.4f} scratch_params={scratch_params} "
      f"transfer_params={model.count_params()} frozen_trainable={frozen_trainable} "
      f"unfrozen_trainable={unfrozen_trainable} frozen_unchanged={frozen_unchanged} "
      f"top_conv_changed={top_conv_changed} augmented_changed={augmented_changed}")
