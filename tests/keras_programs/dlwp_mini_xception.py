# Source: "Deep Learning with Python" (F. Chollet, 2nd ed.), chapter 9, "Putting it together: A
# mini Xception-like model" (listing 9.4: data augmentation, Rescaling, SeparableConv2D blocks
# with BatchNormalization and residual connections, GlobalAveragePooling2D).
# Adapted: Fashion-MNIST (28x28x1) instead of cats vs dogs (180x180x3); two blocks of 16/32
# filters, 1,000 images, 2 epochs.
import keras
from keras import layers

data_augmentation = keras.Sequential(
    [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.2),
    ]
)

inputs = keras.Input(shape=(28, 28, 1))
x = data_augmentation(inputs)

x = layers.Rescaling(1./255)(x)
x = layers.Conv2D(filters=16, kernel_size=5, use_bias=False)(x)

for size in [16, 32]:
    residual = x

    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)

    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)

    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

    residual = layers.Conv2D(
        size, 1, strides=2, padding="same", use_bias=False)(residual)
    x = layers.add([x, residual])

x = layers.GlobalAveragePooling2D()(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs=inputs, outputs=outputs)
model.summary()

(train_images, train_labels), (test_images, test_labels) = keras.datasets.fashion_mnist.load_data()
train_images = train_images[:1000, ..., None].astype("float32")
test_images = test_images[:300, ..., None].astype("float32")
train_labels, test_labels = train_labels[:1000], test_labels[:300]

model.compile(loss="sparse_categorical_crossentropy",
              optimizer="rmsprop",
              metrics=["accuracy"])
history = model.fit(train_images, train_labels, epochs=2, batch_size=32,
                    validation_data=(test_images, test_labels))
test_loss, test_acc = model.evaluate(test_images, test_labels)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"test_accuracy={test_acc:.4f} params={model.count_params()}")
