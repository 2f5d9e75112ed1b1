# Source: "Text classification with Transformer" (Apoorv Nandan),
# https://keras.io/examples/nlp/text_classification_with_transformer/
# Adapted: fortunes (computers vs men-women) instead of IMDB, tokenized in Python; vocabulary
# 2,000, length 64, 2 epochs. TransformerBlock and TokenAndPositionEmbedding as in the example.
import re
from collections import Counter

import numpy as np
import keras
from keras import ops
from keras import layers


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential(
            [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim),]
        )
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


def load_fortunes(category):
    with open(f"/usr/share/games/fortunes/{category}", encoding="utf-8", errors="replace") as f:
        return [t.strip() for t in f.read().split("\n%\n") if t.strip()]


vocab_size = 2000  # Only consider the top 2k words
maxlen = 64  # Only consider the first 64 words of each fortune
texts = load_fortunes("computers")[:500] + load_fortunes("men-women")[:500]
labels = np.array([1] * 500 + [0] * (len(texts) - 500))
words = [re.findall(r"[a-z']+", t.lower()) for t in texts]
counts = Counter(w for ws in words for w in ws)
index = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(vocab_size - 2))}
sequences = [[index.get(w, 1) for w in ws][:maxlen] for ws in words]
x = keras.utils.pad_sequences(sequences, maxlen=maxlen)
order = np.random.default_rng(0).permutation(len(x))
x, labels = x[order], labels[order]
x_train, y_train, x_val, y_val = x[:800], labels[:800], x[800:], labels[800:]
print(len(x_train), "Training sequences")
print(len(x_val), "Validation sequences")

embed_dim = 32  # Embedding size for each token
num_heads = 2  # Number of attention heads
ff_dim = 32  # Hidden layer size in feed forward network inside transformer

inputs = layers.Input(shape=(maxlen,))
embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
x = embedding_layer(inputs)
transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim)
x = transformer_block(x)
x = layers.GlobalAveragePooling1D()(x)
x = layers.Dropout(0.1)(x)
x = layers.Dense(20, activation="relu")(x)
x = layers.Dropout(0.1)(x)
outputs = layers.Dense(2, activation="softmax")(x)

model = keras.Model(inputs=inputs, outputs=outputs)

model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=32, epochs=3, validation_data=(x_val, y_val))
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"accuracy={history.history['accuracy'][-1]:.4f} val_accuracy={history.history['val_accuracy'][-1]:.4f} "
      f"params={model.count_params()}")
