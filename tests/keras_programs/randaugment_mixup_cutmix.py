# Source: "RandAugment for Image Classification for Improved Robustness" (Sayak Paul),
# https://keras.io/examples/vision/randaugment/ , with "MixUp augmentation for image
# classification" (https://keras.io/examples/vision/mixup/) and "CutMix data augmentation for
# image classification" (https://keras.io/examples/vision/cutmix/)
# The RandAugment example's two pipelines (a simple one: RandomFlip / RandomRotation / RandomZoom,
# and RandAugment(value_range=(0, 255))), the same small model trained on each and evaluated on
# clean test images; MixUp and CutMix mixing image/label pairs of a batch (one-hot labels).
# Adapted: the examples' pipelines are tf.data maps over CIFAR-10 and their MixUp / CutMix are
# hand-written TensorFlow functions; here they are Keras 3's layers keras.layers.RandAugment /
# MixUp / CutMix (the layers the examples' techniques became) applied per batch in a
# keras.utils.PyDataset; Fashion-MNIST (800 train, 300 test) padded to 32x32x3 instead of
# CIFAR-10; the example's ResNet50V2 is a small CNN; 3 epochs each.
import numpy as np
import keras
from keras import layers

(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train, y_train = x_train[:800], y_train[:800]
x_test, y_test = x_test[:300], y_test[:300]


def to_rgb(images):
    return np.repeat(np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None], 3, axis=-1).astype("float32")


x_train, x_test = to_rgb(x_train), to_rgb(x_test)
print(f"Total training examples: {len(x_train)}")
print(f"Total test examples: {len(x_test)}")

AUTO_BATCH_SIZE = 64
IMAGE_SIZE = 32
NUM_CLASSES = 10

rand_augment = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.5)

simple_aug = keras.Sequential(
    [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(factor=0.02),
        layers.RandomZoom(height_factor=0.2, width_factor=0.2),
    ]
)

mix_up = keras.layers.MixUp(alpha=0.2)
cut_mix = keras.layers.CutMix(factor=1.0)


class AugmentedImages(keras.utils.PyDataset):
    def __init__(self, images, labels, augment, mix=None, batch_size=AUTO_BATCH_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.images, self.labels = images, labels
        self.augment, self.mix, self.batch_size = augment, mix, batch_size

    def __len__(self):
        return int(np.ceil(len(self.images) / self.batch_size))

    def __getitem__(self, idx):
        low = idx * self.batch_size
        high = min(low + self.batch_size, len(self.images))
        images = self.augment(self.images[low:high])
        labels = keras.ops.one_hot(self.labels[low:high], NUM_CLASSES)
        if self.mix is not None:
            mixed = self.mix({"images": images, "labels": labels})
            images, labels = mixed["images"], mixed["labels"]
        return images, labels


def get_training_model():
    model = keras.Sequential(
        [
            keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)),
            layers.Rescaling(scale=1.0 / 127.5, offset=-1),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    return model


# Mixed batches: labels stay distributions over the classes
sample = {"images": x_train[:8], "labels": keras.ops.one_hot(y_train[:8], NUM_CLASSES)}
mixed_up = mix_up(sample)
cut_mixed = cut_mix(sample)
mixup_label_sum = float(np.mean(keras.ops.convert_to_numpy(keras.ops.sum(mixed_up["labels"], axis=-1))))
cutmix_label_sum = float(np.mean(keras.ops.convert_to_numpy(keras.ops.sum(cut_mixed["labels"], axis=-1))))
augmented = keras.ops.convert_to_numpy(rand_augment(x_train[:8]))
print("RandAugment range:", augmented.min(), augmented.max(), augmented.shape)

histories = {}
accuracies = {}
for name, augment, mix in [("simple", simple_aug, None), ("rand", rand_augment, mix_up),
                           ("cutmix", simple_aug, cut_mix)]:
    model = get_training_model()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(AugmentedImages(x_train, y_train, augment, mix), epochs=3)
    _, test_acc = model.evaluate(x_test, keras.ops.one_hot(y_test, NUM_CLASSES), verbose=0)
    print(f"{name} augmentation: test accuracy {test_acc * 100:.2f}%")
    histories[name], accuracies[name] = history.history, test_acc
print(f"RESULT first_loss={histories['rand']['loss'][0]:.4f} loss={histories['rand']['loss'][-1]:.4f} "
      f"rand_accuracy={accuracies['rand']:.4f} "
      f"simple_first_loss={histories['simple']['loss'][0]:.4f} "
      f"simple_loss={histories['simple']['loss'][-1]:.4f} simple_accuracy={accuracies['simple']:.4f} "
      f"cutmix_first_loss={histories['cutmix']['loss'][0]:.4f} "
      f"cutmix_loss={histories['cutmix']['loss'][-1]:.4f} cutmix_accuracy={accuracies['cutmix']:.4f} "
      f"mixup_label_sum={mixup_label_sum:.4f} cutmix_label_sum={cutmix_label_sum:.4f} "
      f"augmented_min={augmented.min():.1f} augmented_max={augmented.max():.1f}")
