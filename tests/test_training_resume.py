"""Training that survives sessions, and training that distils: exact resume after a time budget, and
the teachers' targets and losses, on real Speech Commands clips."""

import itertools
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from edge_meta.audio import read_audio
from edge_meta.corpora import Item, is_validation_speaker
from edge_meta.errors import DataError
from edge_meta.train.config import config_from_dict
from edge_meta.train.trainer import Trainer
from edge_meta.train.windows import MIN_SPEECH, cut, sentences

WORDS = ["bed", "bird", "cat", "dog", "down", "go", "happy", "house", "left", "marvin", "no", "off"]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, gsc_dir):
    """12 words x 10 real takes: enough for 4-way episodes and a distillation batch, small enough
    that both teachers embed every clip in a few seconds."""
    root = tmp_path_factory.mktemp("corpus")
    for word in WORDS:
        (root / word).mkdir()
        for take in sorted((gsc_dir / word).iterdir())[:10]:
            shutil.copy(take, root / word / take.name)
    return root


@pytest.fixture(scope="module")
def read_sentences(tmp_path_factory, gsc_dir):
    """An importer's output as distillation reads it: sentences.tsv naming "sentences" (three real words run
    together) with their speakers and transcripts. One says an evaluation word, one a soundalike, one is by a
    validation speaker, one says "bed" (a training word a run may hold out as new)."""
    root = tmp_path_factory.mktemp("sentences")
    names = (f"s{k}" for k in itertools.count())
    train = [n for n in itertools.islice(names, 40) if not is_validation_speaker(Item(root.name, "", n, root))][:2]
    held = next(n for n in names if is_validation_speaker(Item(root.name, "", n, root)))
    rows = [(train[0], "YES UP WOW"), (train[1], "SHEILA TREE VISUAL"), (train[0], "STOP TWO RIGHT"),
            (train[1], "LEARN FOR FOLLOW"), (held, "YES STOP WOW"), (train[0], "BED UP YES")]
    silence = np.zeros(4800, np.float32)
    lines = ["utterance\tspeaker\tpath\tseconds\tstatus\tclips\ttext"]
    for k, (speaker, text) in enumerate(rows):
        said = [read_audio(sorted((gsc_dir / {"for": "forward"}.get(w.lower(), w.lower())).iterdir())[k],
                           announce=False) for w in text.split()]  # the transcript is what filters; audio: a word
        audio = np.concatenate([np.concatenate([silence, x]) for x in said] + [np.zeros(32000, np.float32)])
        path = root / f"{k}.flac"
        sf.write(path, audio, 16000)
        lines.append(f"{k}\t{speaker}\t{path}\t{len(audio) / 16000:.2f}\tcut\t3\t{text}")
    (root / "sentences.tsv").write_text("\n".join(lines) + "\n")
    return root


def config(out, corpus, distill: dict | None = None, steps: int = 8):
    return config_from_dict({
        "out": str(out), "cache_dir": str(out / "cache"), "seed": 3, "precision": "fp32",
        "corpora": [{"path": str(corpus)}],
        "encoder": {"name": "dscnn", "channels": 8, "embed_dim": 16, "projections": ["word", "speaker"]},
        "episodes": {"n_way": 4, "k_shot": 1, "q_query": 2, "real_ratio": 1.0},
        "speaker": {"weight": 0.5, "n_way": 3, "k_shot": 1, "q_query": 1},
        "distill": distill or {},
        "optim": {"steps": steps, "lr": 0.01, "warmup": 2},
        "validation": {"every": 1000, "episodes": 5, "n_way": 4, "shots": [1]},
    })


def minutes_clock():
    """A clock that moves one minute each time it is read, so a time budget ends at a known step."""
    ticks = itertools.count()
    return lambda: 60.0 * next(ticks)


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.trainable.state_dict().items()}


@pytest.mark.parametrize("distill", [None, {"word_teacher": "speech_embedding", "batch": 8},
                                     {"word_teacher": "speech_embedding", "batch": 8, "sentences": True},
                                     {"word_teacher": "speech_embedding", "batch": 8, "whiten": True}],
                         ids=["episodic", "episodic+distillation", "episodic+distillation+sentences",
                              "episodic+whitened distillation"])
def test_a_run_stopped_by_its_time_budget_resumes_to_the_same_weights(tmp_path, small_corpus, read_sentences, distill):
    if distill and distill.get("sentences"):
        distill = {**distill, "sentences": [str(read_sentences)], "hop_s": 0.25}
    straight = Trainer(config(tmp_path / "straight", small_corpus, distill), progress=False)
    straight.run()
    assert straight.step == 8 and not straight.stopped_early

    piece = Trainer(config(tmp_path / "pieces", small_corpus, distill), progress=False)
    piece.clock = minutes_clock()
    piece.run(max_minutes=3.5)  # read at 0 (start), then before steps 1, 2, 3: the 4th read is past 3.5 min
    assert piece.stopped_early and piece.step == 3
    assert (tmp_path / "pieces" / "last.pt").exists()

    resumed = Trainer(config(tmp_path / "pieces", small_corpus, distill), progress=False)
    resumed.resume(tmp_path / "pieces" / "last.pt")
    resumed.run()
    assert resumed.step == 8
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed run differs from the straight run in {different}"

    # and the comparison can fail: the same run from another seed does not land on these weights
    other = config(tmp_path / "other", small_corpus, distill)
    other.seed = 4
    t = Trainer(other, progress=False)
    t.run()
    assert any(not torch.equal(a[k], v) for k, v in weights(t).items())


def test_a_killed_run_resumes_without_repeating_the_steps_its_log_ran_past(tmp_path, small_corpus):
    """A run killed between checkpoints has logged steps past its last.pt; the resumed run logs each step once."""
    piece = Trainer(config(tmp_path, small_corpus), progress=False)
    piece.clock = minutes_clock()
    piece.run(max_minutes=3.5)  # last.pt at step 3
    log = tmp_path / "log.csv"
    with log.open("a") as f:  # what a kill at step 6 leaves: steps 4-6 logged, last.pt still at 3
        f.writelines(f"{s},1.0,0.5,0.01,1.0,\n" for s in (4, 5, 6))
    resumed = Trainer(config(tmp_path, small_corpus), progress=False)
    resumed.resume(tmp_path / "last.pt")
    resumed.run()
    steps = [int(r.split(",")[0]) for r in log.read_text().splitlines()[1:]]
    assert steps == list(range(1, 9))


def test_both_teachers_embed_real_speech_by_word_and_by_voice(small_corpus):
    """speech_embedding must tell words apart and GE2E voices, or distilling them teaches nothing."""
    from edge_meta.audio import fix_length, read_audio
    from edge_meta.train.distill import centred
    from edge_meta.train.teachers import GE2ETeacher, SpeechEmbeddingTeacher

    paths = sorted(small_corpus.glob("*/*.flac"))
    clips = np.stack([fix_length(read_audio(p, announce=False), 16000) for p in paths]).astype(np.float32)
    words = np.array([p.parent.name for p in paths])
    speakers = np.array([p.name.split("_")[0] for p in paths])
    for teacher, labels in ((SpeechEmbeddingTeacher(), words), (GE2ETeacher(), speakers)):
        z = centred(teacher.embed(clips))
        sims = z @ z.T
        same = (labels[:, None] == labels[None, :]) & ~np.eye(len(z), dtype=bool)
        if teacher.name == "ge2e":  # only speakers with two or more takes count
            assert same.any()
        differ = labels[:, None] != labels[None, :]
        assert sims[same].mean() > sims[differ].mean() + 0.2, teacher.name


def test_distillation_pulls_the_student_toward_its_teacher(tmp_path, small_corpus):
    """Distillation alone (episodic weight 0) lowers the direct + relational loss on held clips."""
    cfg = config(tmp_path / "d", small_corpus, {"word_teacher": "speech_embedding", "batch": 16,
                                               "relational": 1.0}, steps=40)
    cfg.episodes.weight = 0.0
    cfg.speaker.weight = 0.0
    trainer = Trainer(cfg, progress=False)
    trainer.prepare_data()

    def distill_loss() -> float:
        idx = np.arange(0, len(trainer.train_index), 2)[:48]
        trainer.learner.encoder.eval()
        with torch.no_grad():
            x = torch.from_numpy(trainer.bank.waveforms(trainer.train_index[idx]))
            feats = trainer.frontend(x)
            loss = trainer.distill.loss(trainer.learner.encoder, feats, {"word": trainer.targets["word"][idx]})
        trainer.learner.encoder.train()
        return float(loss)

    before = distill_loss()
    trainer.run()
    after = distill_loss()
    assert after < 0.8 * before, (before, after)


def test_unknown_teacher_or_untaught_projection_is_a_clear_error(tmp_path, small_corpus):
    from edge_meta.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown teachers"):
        Trainer(config(tmp_path, small_corpus, {"word_teacher": "whisper"}), progress=False)
    cfg = config(tmp_path, small_corpus, {"speaker_teacher": "ge2e"})
    cfg.encoder.options["projections"] = ["word"]
    cfg.speaker.weight = 0.0
    with pytest.raises(ConfigError, match="projections the encoder lacks"):
        Trainer(cfg, progress=False)


def test_nothing_to_train_is_a_clear_error(tmp_path, small_corpus):
    from edge_meta.errors import ConfigError

    cfg = config(tmp_path, small_corpus)
    cfg.episodes.weight = 0.0
    cfg.speaker.weight = 0.0
    with pytest.raises(ConfigError, match="nothing to train"):
        Trainer(cfg, progress=False)


def test_a_voice_run_is_validated_and_kept_on_its_voices_alone(tmp_path, small_corpus):
    """With no word loss, the untrained word projection's accuracy must not pick the best checkpoint."""
    cfg = config(tmp_path / "v", small_corpus, {"speaker_teacher": "ge2e", "batch": 8}, steps=2)
    cfg.episodes.weight = 0.0
    trainer = Trainer(cfg, progress=False)
    trainer.prepare_data()
    assert trainer.trained() == {"speaker"}
    assert not [k for k in trainer.validate() if "way" in k]  # no word accuracy
    cfg = config(tmp_path / "b", small_corpus)
    cfg.validation.n_way, cfg.validation.q_query = 2, 1
    both = Trainer(cfg, progress=False)
    both.prepare_data()
    assert both.trained() == {"word", "speaker"}
    assert [k for k in both.validate() if "way" in k]  # the same held-out clips do give one


def test_resuming_from_a_checkpoint_that_is_not_there_is_a_clear_error(tmp_path, capsys):
    from edge_meta.cli import main

    code = main(["train", "--config", "export/recipes/word_distil.toml", "--out", str(tmp_path / "run"),
                 "--resume", str(tmp_path / "lost.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "lost.pt: no checkpoint to resume from" in err and "Traceback" not in err


def test_held_out_new_words_never_train_and_choose_the_best_checkpoint(tmp_path, small_corpus):
    """[validation] new_words: those words' clips are in no training episode or distillation batch, are validated
    as new words, and only that score picks best.pt."""
    cfg = config(tmp_path, small_corpus, {"word_teacher": "speech_embedding", "batch": 8}, steps=2)
    cfg.validation.new_words = 1 / 3
    cfg.validation.every = 1
    cfg.validation.shots = [1]
    trainer = Trainer(cfg, progress=False)
    trainer.prepare_data()
    held = set(np.unique(trainer.val_new.labels))
    assert len(held) == 4  # a third of the 12 words: a 4-way validation episode
    assert not held & set(trainer.bank.labels[trainer.train_index])
    assert not held & set(trainer.val.labels)  # the known-word validation keeps to trained words
    drawn = set()
    for _ in range(20):
        _, support, query = trainer.real.sample()
        drawn |= set(trainer.bank.labels[support]) | set(trainer.bank.labels[query])
    assert drawn and not drawn & held
    assert 0.0 <= trainer.validate()["val_new_words_4way_1shot"] <= 1.0
    # best.pt follows the new words' score alone, not its mean with the trained words' (here they disagree)
    scores = iter([{"val_4way_1shot": 0.9, "val_new_words_4way_1shot": 0.5},
                   {"val_4way_1shot": 0.1, "val_new_words_4way_1shot": 0.6}])
    trainer.validate = lambda: next(scores)
    trainer.run()
    best = torch.load(tmp_path / "best.pt", map_location="cpu", weights_only=False)
    assert best["step"] == 2 and best["best_val"] == 0.6


def test_a_corpus_can_keep_only_clips_long_enough_to_be_words(tmp_path):
    """min_seconds drops the aligner's fragments by their real length, whatever their word."""
    import soundfile as sf

    from edge_meta.train.data import CorpusSpec

    rng = np.random.default_rng(0)
    for word, seconds in (("a", [0.1, 0.12, 0.5]), ("people", [0.4, 0.6, 0.3])):
        (tmp_path / word).mkdir()
        for k, s in enumerate(seconds):
            sf.write(tmp_path / word / f"s{k}_nohash_{k}.flac", 0.1 * rng.standard_normal(int(s * 16000)), 16000)
    kept = CorpusSpec(str(tmp_path), min_seconds=0.35).read().items
    assert sorted((i.word, i.path.name) for i in kept) == [("a", "s2_nohash_2.flac"), ("people", "s0_nohash_0.flac"),
                                                             ("people", "s1_nohash_1.flac")]
    assert len(CorpusSpec(str(tmp_path)).read().items) == 6


def test_read_sentences_join_distillation_but_never_say_what_training_must_not_hear(read_sentences, small_corpus,
                                                                                    tmp_path):
    """Sentence windows: evaluation words, their soundalikes, validation speakers and held-out new words stay out;
    the windows kept are speech, not the pauses; they join the distillation pool (with their teacher targets),
    never an episode."""
    from edge_meta.audio import active_speech

    texts = lambda kept: sorted(p.stem for _, p in kept)
    assert texts(sentences(read_sentences, set())) == ["0", "1", "5"]
    assert texts(sentences(read_sentences, {"bed"})) == ["0", "1"]
    x = read_audio(read_sentences / "0.flac", announce=False)
    windows = cut(x, 16000, 4000)
    starts = range(0, len(x) - 16000 + 1, 4000)
    assert 0 < len(windows) < len(starts)  # the trailing 2 s of (digital) silence gives none
    # mostly speech (a window's own VAD is at least as lenient as the sentence's, which chose it)
    assert all(np.mean(active_speech(w)) >= MIN_SPEECH for w in windows)

    cfg = config(tmp_path, small_corpus, {"word_teacher": "speech_embedding", "batch": 16,
                                          "sentences": [str(read_sentences)], "hop_s": 0.25})
    cfg.validation.new_words = 1 / 3
    trainer = Trainer(cfg, progress=False)
    trainer.prepare_data()
    held = {trainer.bank.class_names[c].split(":", 1)[1] for c in np.unique(trainer.val_new.labels)}
    expected = sum(len(cut(read_audio(p, announce=False), 16000, 4000)) for _, p in sentences(read_sentences, held))
    assert len(trainer.windows) == expected > 0
    assert len(trainer.targets["word"]) == len(trainer.train_index) + len(trainer.windows)
    feats, targets = trainer._distill_batch()
    assert feats.shape[0] == len(targets["word"]) == 16
    bank_clips = len(trainer.bank.clips)
    for _ in range(10):
        _, support, query = trainer.real.sample()  # episodes index the bank: no window is in one
        assert max(support.max(), query.max()) < bank_clips

    cfg.distill.sentences = [str(tmp_path)]
    with pytest.raises(DataError, match="sentences.tsv"):
        Trainer(cfg, progress=False).prepare_data()


def test_a_distillation_only_run_logs_the_loss_it_descends(tmp_path, small_corpus):
    """With no word episodes the log's loss column was the (absent) episode loss, 0 at every step."""
    cfg = config(tmp_path, small_corpus, {"word_teacher": "speech_embedding", "batch": 8}, steps=4)
    cfg.episodes.weight, cfg.speaker.weight = 0.0, 0.0
    Trainer(cfg, progress=False).run()
    losses = [float(r.split(",")[1]) for r in (tmp_path / "log.csv").read_text().splitlines()[1:]]
    assert len(losses) == 4 and min(losses) > 0.0
