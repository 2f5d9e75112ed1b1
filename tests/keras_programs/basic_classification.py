# Source: "Basic classification: Classify images of clothing", TensorFlow tutorials,
# https://www.tensorflow.org/tutorials/keras/classification
# Adapted: Keras 3 imports, 5,000 training images, 2 epochs.
import numpy as np
import keras

fashion_mnist = keras.datasets.fashion_mnist
(train_images, train_labels), (test_images, test_labels) = fashion_mnist.load_data()
train_images, train_labels = train_images[:5000], train_labels[:5000]
test_images, test_labels = test_images[:1000], test_labels[:1000]

class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

train_images = train_images / 255.0
test_images = test_images / 255.0

model = keras.Sequential([
    keras.layers.Flatten(input_shape=(28, 28)),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(10),
])

model.compile(optimizer="adam",
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])

history = model.fit(train_images, train_labels, epochs=2)

test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
print("\nTest accuracy:", test_acc)

probability_model = keras.Sequential([model, keras.layers.Softmax()])
predictions = probability_model.predict(test_images)
print(predictions[0], class_names[np.argmax(predictions[0])], test_labels[0])
assert np.allclose(predictions.sum(axis=1), 1.0, atol=1e-5)

img = test_images[1]
img = np.expand_dims(img, 0)
predictions_single = probability_model.predict(img)
print(predictions_single.shape, np.argmax(predictions_single[0]))
pred_accuracy = float(np.mean(np.argmax(predictions, axis=1) == test_labels))
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"test_accuracy={test_acc:.4f} predict_accuracy={pred_accuracy:.4f}")
