"""The text pipeline: sentence-pair files, standardisation, vocabularies and
`tf.data` datasets (TensorFlow and tensorflow-text).

Typical use, Spanish -> English on the embedded demo corpus:

>>> from keras_nmt import text
>>> train, validation, test = text.split_pairs(text.load_demo_pairs(), seed=0)
>>> processor = text.TextProcessor.from_sentences(
...     train.sources, train.targets, max_length=32)
>>> ds = text.make_dataset(train, processor, batch_size=64, seed=0)
>>> (source, target_in), target_out = next(iter(ds))
"""

from keras_nmt.text.dataset import TokenizedPairs
from keras_nmt.text.dataset import length_buckets
from keras_nmt.text.dataset import make_dataset
from keras_nmt.text.dataset import tokenize_pairs
from keras_nmt.text.pairs import DATA_ENV_VAR
from keras_nmt.text.pairs import SPA_ENG_URL
from keras_nmt.text.pairs import DataFormatError
from keras_nmt.text.pairs import PairSplits
from keras_nmt.text.pairs import SentencePairs
from keras_nmt.text.pairs import load_demo_pairs
from keras_nmt.text.pairs import load_spa_eng
from keras_nmt.text.pairs import read_pairs
from keras_nmt.text.pairs import sample_pairs
from keras_nmt.text.pairs import spa_eng_path
from keras_nmt.text.pairs import split_pairs
from keras_nmt.text.standardize import END_TOKEN
from keras_nmt.text.standardize import PAD_TOKEN
from keras_nmt.text.standardize import START_TOKEN
from keras_nmt.text.standardize import UNK_TOKEN
from keras_nmt.text.standardize import add_start_end
from keras_nmt.text.standardize import join_tokens
from keras_nmt.text.standardize import standardize
from keras_nmt.text.standardize import standardize_cased
from keras_nmt.text.streaming import LengthCounts
from keras_nmt.text.streaming import StreamingPairs
from keras_nmt.text.streaming import StreamingSplits
from keras_nmt.text.streaming import make_streaming_dataset
from keras_nmt.text.streaming import scan_lengths
from keras_nmt.text.streaming import streaming_processor
from keras_nmt.text.subword import SubwordVocabulary
from keras_nmt.text.subword import train_sentencepiece
from keras_nmt.text.text_processor import TextProcessor
from keras_nmt.text.vocabulary import RESERVED_TOKENS
from keras_nmt.text.vocabulary import Vocabulary
from keras_nmt.text.vocabulary import build_vocabulary

__all__ = [
    "DATA_ENV_VAR",
    "END_TOKEN",
    "PAD_TOKEN",
    "RESERVED_TOKENS",
    "SPA_ENG_URL",
    "START_TOKEN",
    "UNK_TOKEN",
    "DataFormatError",
    "LengthCounts",
    "PairSplits",
    "SentencePairs",
    "StreamingPairs",
    "StreamingSplits",
    "SubwordVocabulary",
    "TextProcessor",
    "TokenizedPairs",
    "Vocabulary",
    "add_start_end",
    "build_vocabulary",
    "join_tokens",
    "length_buckets",
    "load_demo_pairs",
    "load_spa_eng",
    "make_dataset",
    "make_streaming_dataset",
    "read_pairs",
    "sample_pairs",
    "scan_lengths",
    "spa_eng_path",
    "split_pairs",
    "standardize",
    "standardize_cased",
    "streaming_processor",
    "tokenize_pairs",
    "train_sentencepiece",
]
