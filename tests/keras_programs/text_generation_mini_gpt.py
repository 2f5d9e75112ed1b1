# Source: "Text generation with a miniature GPT" (Apoorv Nandan),
# https://keras.io/examples/generative/text_generation_with_miniature_gpt/
# The example's causal_attention_mask, TransformerBlock and TokenAndPositionEmbedding custom
# layers, a model with two outputs compiled with loss=[loss_fn, None], and its TextGenerator
# callback sampling from the top-k logits (ops.top_k) after each epoch.
# Adapted: the layers of a KerasHub-style GPT in place of three of the example's: the attention
# is keras.layers.GroupQueryAttention (4 query heads sharing 2 key/value heads) instead of
# MultiHeadAttention, the feed-forward network is keras.layers.EinsumDense instead of Dense,
# and the token embedding is keras.layers.ReversibleEmbedding, whose reverse=True call gives the
# logits (tied weights) instead of a separate Dense(vocab_size); fortunes text tokenized in Python
# instead of IMDB with TextVectorization (Keras's needs TensorFlow); vocabulary 1,000, maxlen
# 24, embed_dim 32, 3 epochs, 12 tokens generated.
import re
from collections import Counter

import numpy as np
import keras
from keras import layers
from keras import ops


def causal_attention_mask(batch_size, n_dest, n_src, dtype):
    """
    Mask the upper half of the dot product matrix in self attention.
    This prevents flow of information from future tokens to current token.
    1's in the lower triangle, counting from the lower right corner.
    """
    i = ops.arange(n_dest)[:, None]
    j = ops.arange(n_src)
    m = i >= j - n_src + n_dest
    mask = ops.cast(m, dtype)
    mask = ops.reshape(mask, [1, n_dest, n_src])
    mult = ops.concatenate(
        [ops.expand_dims(batch_size, -1), ops.convert_to_tensor([1, 1])], 0
    )
    return ops.tile(mask, mult)


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.GroupQueryAttention(
            head_dim=embed_dim // num_heads, num_query_heads=num_heads, num_key_value_heads=2
        )
        self.ffn = keras.Sequential(
            [
                layers.EinsumDense("abc,cd->abd", output_shape=(None, ff_dim),
                                   bias_axes="d", activation="relu"),
                layers.EinsumDense("abc,cd->abd", output_shape=(None, embed_dim),
                                   bias_axes="d"),
            ]
        )
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        input_shape = ops.shape(inputs)
        batch_size = input_shape[0]
        seq_len = input_shape[1]
        causal_mask = causal_attention_mask(batch_size, seq_len, seq_len, "bool")
        attention_output = self.att(inputs, inputs, attention_mask=causal_mask)
        attention_output = self.dropout1(attention_output)
        out1 = self.layernorm1(inputs + attention_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.ReversibleEmbedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(0, maxlen, 1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


vocab_size = 1000  # Only consider the top 1k words
maxlen = 24  # Max sequence size
embed_dim = 32  # Embedding size for each token
num_heads = 4  # Number of attention heads
feed_forward_dim = 64  # Hidden layer size in feed forward network inside transformer


def create_model():
    inputs = layers.Input(shape=(maxlen,), dtype="int32")
    embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
    x = embedding_layer(inputs)
    transformer_block = TransformerBlock(embed_dim, num_heads, feed_forward_dim)
    x = transformer_block(x)
    outputs = embedding_layer.token_emb(x, reverse=True)
    model = keras.Model(inputs=inputs, outputs=[outputs, x])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        "adam",
        loss=[loss_fn, None],
    )  # No loss and optimization based on word embeddings from transformer block
    return model


# Prepare the data for word-level language modelling
with open("/usr/share/games/fortunes/computers", encoding="utf-8", errors="replace") as f:
    texts = [t.strip() for t in f.read().split("\n%\n") if t.strip()][:600]
words = [["[start]"] + re.findall(r"[a-z']+|[.,!?]", t.lower()) for t in texts]
counts = Counter(w for ws in words for w in ws)
vocab = ["", "[UNK]"] + [w for w, _ in counts.most_common(vocab_size - 2)]
word_to_index = {w: i for i, w in enumerate(vocab)}
tokens = np.zeros((len(words), maxlen + 1), dtype="int32")
for row, ws in enumerate(words):
    ids = [word_to_index.get(w, 1) for w in ws][: maxlen + 1]
    tokens[row, : len(ids)] = ids


def prepare_lm_inputs_labels(tokenized_sentences):
    """
    Shift word sequences by 1 position so that the target for position (i) is
    word at position (i+1). The model will use all words up till position (i)
    to predict the next word.
    """
    x = tokenized_sentences[:, :-1]
    y = tokenized_sentences[:, 1:]
    return x, y


x_train, y_train = prepare_lm_inputs_labels(tokens)


class TextGenerator(keras.callbacks.Callback):
    """A callback to generate text from a trained model.
    1. Feed some starting prompt to the model
    2. Predict probabilities for the next token
    3. Sample the next token and add it to the next input

    Arguments:
        max_tokens: Integer, the number of tokens to be generated after prompt.
        start_tokens: List of integers, the token indices for the starting prompt.
        index_to_word: List of strings, obtained from the TextVectorization layer.
        top_k: Integer, sample from the `top_k` token predictions.
        print_every: Integer, print after this many epochs.
    """

    def __init__(
        self, max_tokens, start_tokens, index_to_word, top_k=10, print_every=1
    ):
        self.max_tokens = max_tokens
        self.start_tokens = start_tokens
        self.index_to_word = index_to_word
        self.print_every = print_every
        self.k = top_k
        self.generated = []

    def sample_from(self, logits):
        logits, indices = ops.top_k(logits, k=self.k, sorted=True)
        indices = np.asarray(indices).astype("int32")
        preds = keras.activations.softmax(ops.expand_dims(logits, 0))[0]
        preds = np.asarray(preds).astype("float32")
        return np.random.choice(indices, p=preds / preds.sum())

    def detokenize(self, number):
        return self.index_to_word[number]

    def on_epoch_end(self, epoch, logs=None):
        start_tokens = [_ for _ in self.start_tokens]
        if (epoch + 1) % self.print_every != 0:
            return
        num_tokens_generated = 0
        tokens_generated = []
        while num_tokens_generated <= self.max_tokens:
            pad_len = maxlen - len(start_tokens)
            sample_index = len(start_tokens) - 1
            if pad_len < 0:
                x = start_tokens[:maxlen]
                sample_index = maxlen - 1
            elif pad_len > 0:
                x = start_tokens + [0] * pad_len
            else:
                x = start_tokens
            x = np.array([x])
            y, _ = self.model.predict(x, verbose=0)
            sample_token = self.sample_from(y[0][sample_index])
            tokens_generated.append(sample_token)
            start_tokens.append(sample_token)
            num_tokens_generated = len(tokens_generated)
        txt = " ".join(
            [self.detokenize(_) for _ in self.start_tokens + tokens_generated]
        )
        self.generated = tokens_generated
        print(f"generated text:\n{txt}\n")


# Tokenize starting prompt
start_prompt = "[start] the computer"
start_tokens = [word_to_index.get(_, 1) for _ in start_prompt.split()]
num_tokens_generated = 12
text_gen_callback = TextGenerator(num_tokens_generated, start_tokens, vocab)

model = create_model()
model.summary()
history = model.fit(x_train, y_train, batch_size=32, verbose=2, epochs=3,
                    callbacks=[text_gen_callback])
print(f"RESULT first_loss={history.history['loss'][0]:.4f} loss={history.history['loss'][-1]:.4f} "
      f"generated={len(text_gen_callback.generated)} params={model.count_params()}")
