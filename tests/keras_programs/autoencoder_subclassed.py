# Source: "Intro to Autoencoders", TensorFlow tutorials,
# https://www.tensorflow.org/tutorials/generative/autoencoder
# Sections "First example: Basic autoencoder" (subclassed Autoencoder with Sequential encoder
# and decoder) and "Second example: Image denoising" (Conv2D / Conv2DTranspose Denoise model).
# Adapted: Keras 3 imports, keras.random instead of tf.random, 1,000 images, 2 epochs.
import numpy as np
import keras
from keras import layers, losses
from keras import ops
from keras.datasets import fashion_mnist
from keras.models import Model

(x_train, _), (x_test, _) = fashion_mnist.load_data()
x_train = x_train[:1000].astype("float32") / 255.
x_test = x_test[:500].astype("float32") / 255.
print(x_train.shape)
print(x_test.shape)


class Autoencoder(Model):
    def __init__(self, latent_dim, shape):
        super(Autoencoder, self).__init__()
        self.latent_dim = latent_dim
        self.shape = shape
        self.encoder = keras.Sequential([
            layers.Flatten(),
            layers.Dense(latent_dim, activation="relu"),
        ])
        self.decoder = keras.Sequential([
            layers.Dense(int(np.prod(shape)), activation="sigmoid"),
            layers.Reshape(shape)
        ])

    def call(self, x):
        encoded = self.encoder(x)
        decoded = self.decoder(encoded)
        return decoded


shape = x_test.shape[1:]
latent_dim = 64
autoencoder = Autoencoder(latent_dim, shape)
autoencoder.compile(optimizer="adam", loss=losses.MeanSquaredError())
history = autoencoder.fit(x_train, x_train, epochs=3, shuffle=True,
                          validation_data=(x_test, x_test))
encoded_imgs = ops.convert_to_numpy(autoencoder.encoder(x_test))
decoded_imgs = ops.convert_to_numpy(autoencoder.decoder(encoded_imgs))
print(encoded_imgs.shape, decoded_imgs.shape)

x_train = x_train[..., np.newaxis]
x_test = x_test[..., np.newaxis]
noise_factor = 0.2
x_train_noisy = x_train + noise_factor * ops.convert_to_numpy(keras.random.normal(shape=x_train.shape))
x_test_noisy = x_test + noise_factor * ops.convert_to_numpy(keras.random.normal(shape=x_test.shape))
x_train_noisy = np.clip(x_train_noisy, 0., 1.)
x_test_noisy = np.clip(x_test_noisy, 0., 1.)


class Denoise(Model):
    def __init__(self):
        super(Denoise, self).__init__()
        self.encoder = keras.Sequential([
            layers.Input(shape=(28, 28, 1)),
            layers.Conv2D(16, (3, 3), activation="relu", padding="same", strides=2),
            layers.Conv2D(8, (3, 3), activation="relu", padding="same", strides=2)])

        self.decoder = keras.Sequential([
            layers.Conv2DTranspose(8, kernel_size=3, strides=2, activation="relu", padding="same"),
            layers.Conv2DTranspose(16, kernel_size=3, strides=2, activation="relu", padding="same"),
            layers.Conv2D(1, kernel_size=(3, 3), activation="sigmoid", padding="same")])

    def call(self, x):
        encoded = self.encoder(x)
        decoded = self.decoder(encoded)
        return decoded


autoencoder = Denoise()
autoencoder.compile(optimizer="adam", loss=losses.MeanSquaredError())
denoise_history = autoencoder.fit(x_train_noisy, x_train, epochs=2, shuffle=True,
                                  validation_data=(x_test_noisy, x_test))
autoencoder.encoder.summary()
autoencoder.decoder.summary()
encoded_imgs = ops.convert_to_numpy(autoencoder.encoder(x_test_noisy))
decoded_imgs = ops.convert_to_numpy(autoencoder.decoder(encoded_imgs))
print(encoded_imgs.shape, decoded_imgs.shape)
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"denoise_first_loss={denoise_history.history['loss'][0]:.4f} "
      f"denoise_loss={denoise_history.history['loss'][-1]:.4f}")
