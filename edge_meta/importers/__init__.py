"""`edge-meta data ...`: turn a user's local download into the corpus layout `edge_meta.corpora` reads.

Every importer writes ``<word>/<speaker>_nohash_<n>.flac`` (16 kHz mono, 16-bit FLAC) plus a
SOURCE.md that says where the audio came from, its license, what was dropped and which speakers
`is_validation_speaker` holds out. A corpus's own test split goes to a separate ``<out>_test``
corpus, so a training recipe only sees it if it names it. English imports never keep FSDD's
evaluation words nor words that sound like them (`ENGLISH_EVAL_WORDS`, `EVAL_SOUNDALIKES`). Reruns
skip what is already there.

- `speechocean`: speechocean762 (Kaldi folders), sentences cut into words by forced alignment.
- `librispeech`: LibriSpeech-style ``<speaker>/<chapter>/*.trans.txt`` folders, aligned the same way.
- `speech_commands`: Google Speech Commands v0.02 with its testing/validation lists.
- `mswc`: the Multilingual Spoken Words Corpus (``<lang>/clips/<word>/*.opus`` + splits CSV).

Torch-free: the aligner is pocketsphinx (the ``data`` extra).
"""
