from edge_meta.corpora import DIGIT_WORDS, ENGLISH_EVAL_WORDS, read_corpus, read_fsdd


def test_fsdd_reader_knows_word_speaker_and_corpus(fsdd_dir):
    c = read_fsdd(fsdd_dir)
    assert len(c.items) == 3000
    assert c.words == sorted(DIGIT_WORDS)
    assert len(c.speakers) == 6
    item = next(i for i in c.items if i.path.name == "7_jackson_32.wav")
    assert (item.corpus, item.word, item.speaker, item.label) == ("fsdd", "seven", "jackson", "fsdd:seven")


def test_speech_commands_layout_reads_words_speakers_and_noise(gsc_dir, arabic_dir):
    gsc = read_corpus(gsc_dir)
    assert "_silence_" not in gsc.words and len(gsc.noise) == 408
    assert len(gsc.speakers) > 200
    item = gsc.items[0]
    assert item.path.parent.name == item.word and item.path.name.startswith(item.speaker + "_nohash_")
    arabic = read_corpus(arabic_dir)
    assert len(arabic.words) == 40 and len(arabic.speakers) == 30


def test_classes_never_merge_across_corpora(gsc_dir, arabic_dir):
    gsc, arabic = read_corpus(gsc_dir), read_corpus(arabic_dir)
    assert "zero" in gsc.words and "zero" in arabic.words
    labels = {i.label for i in gsc.items} & {i.label for i in arabic.items}
    assert labels == set()


def test_word_filter_holds_out_the_evaluation_digits(gsc_dir):
    gsc = read_corpus(gsc_dir).without_words(ENGLISH_EVAL_WORDS)
    assert not set(gsc.words) & ENGLISH_EVAL_WORDS
    assert {"yes", "no", "marvin"} <= set(gsc.words)
