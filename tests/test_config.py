import pytest

from textgan.config import ConfigError, load_config, parse_override


def test_defaults_task_and_override():
    cfg = load_config("toy", "cpu", ["train.lr_g=3e-4", "train.estimator=gumbel", "data.domains=[a, b]"])
    assert cfg.task == "toy" and cfg.data.corpus == "toy"
    assert cfg.train.lr_g == pytest.approx(3e-4) and isinstance(cfg.train.lr_g, float)
    assert cfg.train.estimator == "gumbel"
    assert cfg.data.domains == ["a", "b"]


def test_typo_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        load_config("toy", "cpu", ["train.lrg=1e-4"])
    message = str(err.value)
    assert "train.lrg" in message and "lr_g" in message and "did you mean" in message
    assert "\n" not in message


def test_unknown_section_and_wrong_type():
    with pytest.raises(ConfigError, match="unknown config key 'trainer'"):
        load_config("toy", "cpu", ["trainer.lr=1"])
    with pytest.raises(ConfigError, match="train.batch_size must be int"):
        load_config("toy", "cpu", ["train.batch_size=big"])
    with pytest.raises(ConfigError, match="train.estimator must be one of soft, gumbel, reinforce"):
        load_config("toy", "cpu", ["train.estimator=ppo"])
    with pytest.raises(ConfigError, match="bool"):
        load_config("toy", "cpu", ["generator.shared=3"])


def test_unknown_task_and_preset():
    with pytest.raises(ConfigError, match="unknown task 'sentimnet'.*sentiment"):
        load_config("sentimnet")
    with pytest.raises(ConfigError, match="unknown preset 'tpu'"):
        load_config("sentiment", "tpu")


def test_presets_differ_and_resolve():
    cpu, gpu = load_config("sentiment", "cpu"), load_config("sentiment", "gpu")
    assert cpu.preset == "cpu" and gpu.preset == "gpu"
    assert gpu.generator.d_model > cpu.generator.d_model


def test_parse_override_nesting():
    assert parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}
    with pytest.raises(ConfigError):
        parse_override("no_equals_sign")


def test_run_guard_setting_is_checked():
    assert load_config("sentiment_zh", "cpu", ["generator.max_run=2"]).generator.max_run == 2
    with pytest.raises(ConfigError, match="generator.max_run must be 0"):
        load_config("sentiment_zh", "cpu", ["generator.max_run=-1"])
    with pytest.raises(ConfigError, match="causal does not support generator.max_run"):
        load_config("sentiment", "cpu", ["generator.arch=causal", "generator.init=smollm2", "generator.max_run=2"])


@pytest.mark.parametrize("overrides, message", [
    (["train.pairs_min_style=0.5"], r"train.pairs_min_style filters mined pairs: set train.bootstrap"),
    (["train.pairs_min_style_real=0.5"], r"train.pairs_min_style_real filters mined pairs: set train.bootstrap"),
    (["train.pairs_min_score=0.5"], r"train.pairs_min_score filters mined pairs: set train.bootstrap"),
    (["train.bootstrap=template", "train.pairs_min_style=1.5"], r"train.pairs_min_style must be in \[0, 1\)"),
    (["train.bootstrap_steps=5"], r"train.bootstrap_steps / train.lambda_pairs need mined pairs: set train.bootstrap"),
    (["train.lambda_pairs=0.5"], r"train.bootstrap_steps / train.lambda_pairs need mined pairs: set train.bootstrap"),
    (["train.bootstrap=wordbyword"], r"train.bootstrap=wordbyword translates through cross-lingual embeddings"),
])
def test_bootstrap_settings_are_checked_when_the_config_is_read(overrides, message):
    """train.bootstrap's dependent keys are refused by config.check, before any data is read or mined."""
    with pytest.raises(ConfigError, match=message):
        load_config("toy", "cpu", overrides)


def test_bootstrap_settings_that_go_together_load():
    for overrides in (["train.bootstrap=template", "train.bootstrap_steps=5", "train.pairs_min_style=0.5"],
                      ["train.bootstrap=wordbyword", "train.crosslingual=unsupervised", "train.lambda_pairs=0.5"]):
        load_config("toy", "cpu", overrides)
