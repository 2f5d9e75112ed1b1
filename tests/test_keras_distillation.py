"""keras.distillation: Distiller's losses equal real Keras 3's given the same weights, Hinton's KL
term against NumPy, a teacher -> student fit that learns with the teacher frozen, config round
trip, and every bad argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigmodel import keras
from bigmodel.errors import ConfigError, ShapeError
from bigmodel.keras.distillation import (
    DistillationLoss,
    Distiller,
    FeatureDistillation,
    LogitsDistillation,
)
from keras_reference import real_keras as _real_keras

rng = np.random.default_rng(0)
X = rng.normal(size=(16, 6)).astype(np.float32)
Y = rng.integers(0, 3, size=16)


def _pair(lib, hidden_teacher=8, hidden_student=4):
    def make(name, hidden):
        return lib.Sequential([lib.Input((6,)),
                               lib.layers.Dense(hidden, activation="relu", name="h"),
                               lib.layers.Dense(3, name="out")], name=name)
    return make("teacher", hidden_teacher), make("student", hidden_student)


CASES = {
    "logits_by_name": (lambda d, lib: d.LogitsDistillation(temperature=3.0), 0.5),
    "kl_object": (lambda d, lib: d.LogitsDistillation(temperature=2.0,
                                                      loss=lib.losses.KLDivergence()), 0.3),
    "logits_and_features": (lambda d, lib: [
        d.LogitsDistillation(),
        d.FeatureDistillation(loss="mse", teacher_layer_name="out", student_layer_name="out")],
        0.5),
    "cce_weighted": (lambda d, lib: d.LogitsDistillation(temperature=4.0,
                                                         loss="categorical_crossentropy"), 0.0),
}


def _loss_values(lib, case, weights):
    teacher, student = _pair(lib)
    teacher.set_weights(weights[:4])
    student.set_weights(weights[4:])
    make, student_weight = CASES[case]
    distiller = lib.distillation.Distiller(teacher, student, make(lib.distillation, lib),
                                           student_loss_weight=student_weight)
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = torch.tensor(X), torch.tensor(Y)
    with torch.no_grad():
        total = distiller.compute_loss(x=x, y=y, y_pred=distiller(x))
    return [float(total), float(distiller.student_loss_tracker.result()),
            float(distiller.distillation_loss_tracker.result())]


@pytest.mark.parametrize("case", sorted(CASES))
def test_losses_equal_real_keras(case):
    real = _real_keras()
    teacher, student = _pair(keras)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in teacher.get_weights()]
    weights += [0.5 * rng.normal(size=w.shape).astype(np.float32) for w in student.get_weights()]
    ours = _loss_values(keras, case, weights)
    theirs = _loss_values(real, case, weights)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert ours[2] > 0  # the distillation term is really there


def test_kl_object_is_hintons_term():
    teacher = rng.normal(size=(5, 4)).astype(np.float32)
    student = rng.normal(size=(5, 4)).astype(np.float32)
    t = 2.5

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(teacher / t), softmax(student / t)
    expected = t * t * np.mean(np.sum(p * np.log(p / q), axis=-1))
    loss = LogitsDistillation(temperature=t, loss=keras.losses.KLDivergence())
    value = loss.compute_loss(torch.tensor(teacher), torch.tensor(student))
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    mse = FeatureDistillation(loss=["mse", None])
    value = mse.compute_loss([torch.tensor(teacher), torch.tensor(teacher)],
                             [torch.tensor(student), torch.tensor(teacher)])
    np.testing.assert_allclose(float(value), np.mean((teacher - student) ** 2), rtol=1e-5)


def test_fit_learns_from_the_teacher_which_stays_frozen():
    torch.manual_seed(0)
    x = np.random.default_rng(1).normal(size=(256, 6)).astype(np.float32)
    teacher, student = _pair(keras, hidden_teacher=16, hidden_student=8)
    teacher.set_weights([2 * w for w in teacher.get_weights()])
    y = teacher.predict(x, verbose=0).argmax(-1)  # the teacher is right by construction
    before = [w.copy() for w in teacher.get_weights()]
    hinton = LogitsDistillation(temperature=2.0, loss=keras.losses.KLDivergence())
    distiller = Distiller(teacher, student, hinton, student_loss_weight=0.3)
    distiller.compile(optimizer=keras.optimizers.Adam(0.02),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = distiller.fit(x, y, epochs=40, batch_size=32, verbose=0).history
    assert set(history) == {"loss", "accuracy", "student_loss", "distillation_loss",
                            "total_loss"}
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["distillation_loss"][-1] < history["distillation_loss"][0]
    accuracy = float((distiller.student.predict(x, verbose=0).argmax(-1) == y).mean())
    majority = np.bincount(y).max() / len(y)
    assert accuracy > 0.65 and accuracy > majority + 0.1  # 0.73-0.89 over 5 seeds
    for old, new in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert len(distiller.trainable_weights) == len(student.trainable_weights)


def test_config_round_trip_and_custom_loss():
    teacher, student = _pair(keras)
    losses = [LogitsDistillation(temperature=2.0),
              FeatureDistillation(teacher_layer_name="h", student_layer_name="out",
                                  loss="cosine_similarity")]
    distiller = Distiller(teacher, student, [losses[0]], distillation_loss_weights=[0.7],
                          student_loss_weight=0.2)
    config = distiller.get_config()
    assert config["distillation_losses"][0] == {
        "class_name": "LogitsDistillation",
        "config": {"temperature": 2.0, "loss": {  # Keras's form of a loss function
            "module": "builtins", "class_name": "function", "config": "kl_divergence",
            "registered_name": "function"}}}
    again = Distiller.from_config(config)
    assert again.student_loss_weight == 0.2 and again.distillation_loss_weights == [0.7]
    assert again.distillation_losses[0].temperature == 2.0
    assert again.distillation_losses[0].loss is keras.losses.kl_divergence
    real = _real_keras()
    assert real.distillation.LogitsDistillation(temperature=2.0).get_config() == \
        losses[0].get_config()
    assert real.distillation.FeatureDistillation(
        teacher_layer_name="h", student_layer_name="out", loss="cosine_similarity"
    ).get_config() == losses[1].get_config()
    assert FeatureDistillation.from_config(losses[1].get_config()).get_config() == \
        losses[1].get_config()

    class Zero(DistillationLoss):
        def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
            return (student_outputs * 0).sum(-1)  # not a scalar

    bad = Distiller(teacher, student, Zero())
    bad.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ShapeError, match="non-scalar"):
        bad.compute_loss(x=torch.tensor(X), y=torch.tensor(Y), y_pred=bad(torch.tensor(X)))


def test_bad_arguments():
    teacher, student = _pair(keras)
    logits = LogitsDistillation()
    with pytest.raises(ConfigError, match="student_loss_weight.*1.5"):
        Distiller(teacher, student, logits, student_loss_weight=1.5)
    with pytest.raises(ConfigError, match="teacher must be a keras.Model"):
        Distiller(torch.nn.Linear(6, 3), student, logits)
    with pytest.raises(ConfigError, match="cannot be None"):
        Distiller(teacher, student, None)
    with pytest.raises(ConfigError, match=r"distillation_loss_weights \(1\).*\(2\)"):
        Distiller(teacher, student, [logits, logits], distillation_loss_weights=[1.0])
    with pytest.raises(ConfigError, match="In teacher model"):
        Distiller(teacher, student, FeatureDistillation(teacher_layer_name="nope"))
    with pytest.raises(ConfigError, match="temperature must be positive"):
        LogitsDistillation(temperature=0)
    with pytest.raises(ConfigError, match="temperature must be a number"):
        LogitsDistillation(temperature="hot")
    with pytest.raises(ConfigError, match="at least one non-`None`"):
        FeatureDistillation(loss=[None, None])
    with pytest.raises(ConfigError, match="'loss' cannot be None"):
        Distiller(teacher, student, logits).compile(optimizer="adam")
    wide = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])
    with pytest.raises(ShapeError, match="output shapes are incompatible"):
        Distiller(teacher, wide, logits)
