import keras
from keras import ops

from keras_nmt import decoding


class Seq2SeqInference:
    """Compiled greedy, sampling and beam-search decoding of a seq2seq model.

    Wraps a model from `build_seq2seq` (or any functional model with an
    `Encoder` named `"encoder"` and an `AttentionDecoder` named `"decoder"`):
    the encoder runs once per batch of sources, the decoder's `step` runs
    inside one compiled `keras_nmt.decoding` loop. Each method compiles
    once per source shape and option values, and reads the model's current
    weights at every call (also on JAX, where they are passed to the
    compiled function). No method generates the padding token (0) or the
    start token; the options of `keras_nmt.decoding` (`min_length`,
    `no_repeat_ngram_size`, `max_length_ratio`, `top_p`, `coverage_penalty`,
    `n_best`) are keyword arguments of the methods.

    Args:
        model: the seq2seq `keras.Model`.
        start_token: int, the id that starts every target (`[START]`).
        end_token: int, the id that ends a target (`[END]`), or `None` to
            always generate `max_length` tokens.
        max_length: int, the most tokens generated per source.
        seed: optional int, seed of `sample` (each call draws new tokens; the
            sequence of calls is reproducible).
        jit_compile: bool, compile with XLA on TensorFlow (JAX always does).

    Example:

    >>> from keras_nmt.seq2seq import build_seq2seq
    >>> model = build_seq2seq(20, 20, embedding_dim=8, units=16)
    >>> inference = Seq2SeqInference(model, start_token=1, end_token=2,
    ...                              max_length=6)
    >>> out = inference.beam_search(keras.ops.ones((3, 5), "int32"),
    ...                             beam_width=4)
    >>> tuple(out.tokens.shape), tuple(out.attention.shape)
    ((3, 4, 6), (3, 4, 6, 5))
    """

    def __init__(
        self,
        model,
        *,
        start_token,
        end_token,
        max_length=50,
        seed=None,
        jit_compile=False,
    ):
        self.model = model
        self.encoder = model.get_layer("encoder")
        self.decoder = model.get_layer("decoder")
        self.start_token = int(start_token)
        self.end_token = None if end_token is None else int(end_token)
        self.max_length = int(max_length)
        self.seed_generator = keras.random.SeedGenerator(seed)
        variables = [*self._model_variables(), self.seed_generator.state]
        self._compiled = {
            name: decoding.compile_decoding(
                fn, variables=variables, jit_compile=jit_compile
            )
            for name, fn in (
                ("greedy", self._greedy),
                ("sample", self._sample),
                ("beam_search", self._beam_search),
            )
        }

    def _model_variables(self):
        """The variables the compiled functions read (JAX passes them in)."""
        return self.model.variables

    def encode(self, source_tokens):
        """`(state, constants)` for `step`, from int sources `(B, Ts)`."""
        outputs, mask, final_state = self.encoder(source_tokens, training=False)
        return (
            self.decoder.initial_state(final_state, mask),
            self.decoder.constants(outputs, mask),
        )

    def step(self, tokens, state, constants):
        """One decoder step: `(logits, attention_weights, new_state)`."""
        return self.decoder.step(tokens, state, constants)

    def greedy(
        self,
        source_tokens,
        *,
        min_length=0,
        no_repeat_ngram_size=0,
        max_length_ratio=None,
    ):
        """The most probable allowed token at every step. Returns `Decoded`.

        `min_length`: tokens before the end token is allowed;
        `no_repeat_ngram_size`: never repeat an n-gram of that many tokens
        (0: allowed); `max_length_ratio`: at most
        `ceil(max_length_ratio * source_length)` tokens per source (the
        source length counts its non-zero tokens). See
        `keras_nmt.decoding.greedy_search`.
        """
        return self._compiled["greedy"](
            self._tokens(source_tokens),
            min_length=min_length,
            no_repeat_ngram_size=no_repeat_ngram_size,
            max_length_ratio=max_length_ratio,
        )

    def sample(
        self,
        source_tokens,
        *,
        temperature=1.0,
        top_k=None,
        top_p=None,
        min_length=0,
        no_repeat_ngram_size=0,
        max_length_ratio=None,
    ):
        """Tokens drawn from `softmax(logits / temperature)`, optionally among
        the `top_k` most probable only, then among the nucleus of
        probability `top_p` only; `min_length`, `no_repeat_ngram_size` and
        `max_length_ratio` as for `greedy`. Returns `Decoded`."""
        return self._compiled["sample"](
            self._tokens(source_tokens),
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            min_length=min_length,
            no_repeat_ngram_size=no_repeat_ngram_size,
            max_length_ratio=max_length_ratio,
        )

    def beam_search(
        self,
        source_tokens,
        *,
        beam_width=5,
        length_penalty=0.0,
        coverage_penalty=0.0,
        min_length=0,
        no_repeat_ngram_size=0,
        max_length_ratio=None,
        n_best=None,
    ):
        """The `beam_width` best hypotheses per source, ranked by the GNMT
        score with length penalty `length_penalty` (alpha) and coverage
        penalty `coverage_penalty` (beta); `min_length`,
        `no_repeat_ngram_size` and `max_length_ratio` as for `greedy`.
        With `n_best`, a source stops as soon as its `n_best` best
        hypotheses are settled: those are exact, the others may be cut
        short (see `keras_nmt.decoding.beam_search`). Returns `Decoded`
        with a beam axis."""
        return self._compiled["beam_search"](
            self._tokens(source_tokens),
            beam_width=beam_width,
            length_penalty=length_penalty,
            coverage_penalty=coverage_penalty,
            min_length=min_length,
            no_repeat_ngram_size=no_repeat_ngram_size,
            max_length_ratio=max_length_ratio,
            n_best=n_best,
        )

    # The functions that get compiled.

    def _start(self, source_tokens):
        state, constants = self.encode(source_tokens)
        start = ops.full((ops.shape(source_tokens)[0],), self.start_token)
        return ops.cast(start, "int32"), state, constants

    def _options(self, source_tokens, max_length_ratio):
        options = {
            "max_length": self.max_length,
            "end_token": self.end_token,
            "max_length_ratio": max_length_ratio,
        }
        if max_length_ratio is not None:
            # The encoder's padding id is 0.
            not_padding = ops.not_equal(source_tokens, 0)
            options["source_lengths"] = ops.sum(
                ops.cast(not_padding, "int32"), axis=1
            )
        return options

    def _greedy(self, source_tokens, max_length_ratio, **rules):
        start, state, constants = self._start(source_tokens)
        return decoding.greedy_search(
            self.step,
            start,
            state,
            constants,
            **rules,
            **self._options(source_tokens, max_length_ratio),
        )

    def _sample(self, source_tokens, max_length_ratio, **options):
        start, state, constants = self._start(source_tokens)
        return decoding.sample(
            self.step,
            start,
            state,
            constants,
            seed=self.seed_generator,
            **options,
            **self._options(source_tokens, max_length_ratio),
        )

    def _beam_search(self, source_tokens, max_length_ratio, **options):
        start, state, constants = self._start(source_tokens)
        return decoding.beam_search(
            self.step,
            start,
            state,
            constants,
            **options,
            **self._options(source_tokens, max_length_ratio),
        )

    @staticmethod
    def _tokens(source_tokens):
        source_tokens = ops.convert_to_tensor(source_tokens)
        if len(source_tokens.shape) != 2:
            raise ValueError(
                "Seq2SeqInference: `source_tokens` must be int token ids of "
                "shape (batch_size, source_length), 0 = padding. Received "
                f"shape {tuple(source_tokens.shape)}."
            )
        return ops.cast(source_tokens, "int32")
