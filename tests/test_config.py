"""The validated experiment config: every shipped config reads, and every bad key or value is one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from corpus import TINY_AASIST

from antispoof.config import ConfigValueError, parse_config, read_config

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "config").glob("*.conf")) + sorted((REPO / "config" / "upstream").glob("*.conf"))
MINIMAL = {"model_config": TINY_AASIST, "optim_config": {"base_lr": 1e-4}}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO / "config").as_posix())
def test_every_shipped_config_validates(path):
    config = read_config(path)
    assert config.model_config["architecture"]
    assert json.loads(json.dumps(config.to_dict()))["model_config"] == config.model_config


def test_defaults_live_in_one_place_and_strings_are_coerced():
    config = parse_config(
        {**MINIMAL, "num_epochs": "1", "freq_aug": "True", "cudnn_benchmark_toggle": "false"}
        | {"optim_config": {"base_lr": "0.001", "amsgrad": "False"}}
    )
    assert config.num_epochs == 1 and config.freq_aug is True and config.cudnn_benchmark_toggle is False
    assert config.optim_config.base_lr == 0.001 and config.optim_config.amsgrad is False
    assert config.seed == 1234 and config.num_workers == 0 and config.precision == "fp32"
    assert config.parallel_batches == 0  # on a CPU: one batch at once per torch thread


@pytest.mark.parametrize(
    "change, message",
    [
        ({"batch_sise": 8}, "unknown key 'batch_sise' (did you mean 'batch_size'?)"),
        ({"batch_size": "eight"}, 'batch_size must be int, got "eight"'),
        ({"batch_size": 0}, "batch_size must be > 0, got 0"),
        ({"batch_size": 2.5}, "batch_size must be int, got 2.5"),
        ({"num_epochs": None}, "num_epochs must be int, got null"),
        ({"early_stopping_patience": 0}, "early_stopping_patience must be > 0, got 0"),
        ({"parallel_batches": -1}, "parallel_batches must be >= 0, got -1"),
        ({"freq_aug": "yes"}, 'freq_aug must be bool, got "yes"'),
        ({"precision": "fp8"}, "precision must be one of 'fp32', 'bf16', 'fp16', got \"fp8\""),
        (
            {"optim_config": {"base_lrr": 1e-4}},
            "unknown key optim_config.'base_lrr' (did you mean 'base_lr'?)",
        ),
        ({"optim_config": {"lr_min": 1e-5}}, "missing key optim_config.'base_lr'"),
        ({"averaging": {"method": "ema"}}, "averaging.method must be one of 'swa', 'improved', 'top_k'"),
        ({"averaging": {"method": "swa"}}, "averaging.swa_epochs must be >= 1 with method 'swa'"),
        ({"model_config": {"architecture": "RawNet9"}}, "unknown architecture 'RawNet9'"),
        ({"model_config": {**TINY_AASIST, "nb_filts": 8}}, "unknown key 'nb_filts' (did you mean 'filts'?)"),
        ({"model_config": {**TINY_AASIST, "nb_samp": 0}}, "nb_samp must be a positive integer"),
        (
            {"model_config": {k: v for k, v in TINY_AASIST.items() if k != "filts"}},
            "lacks the required key 'filts'",
        ),
        ({"rawboost": {"algo": 5, "SNRmim": 10}}, "rawboost: unknown parameter(s) SNRmim"),
        ({"optim_config": None}, None),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_it(change, message):
    if message is None:  # optim_config may be absent (evaluation-only configs): that is not an error
        parse_config({**MINIMAL, **change})
        return
    with pytest.raises(ConfigValueError) as info:
        parse_config({**MINIMAL, **change}, "my.conf")
    text = str(info.value)
    assert text.startswith("my.conf: ") and message in text and "\n" not in text


def test_comment_keys_are_allowed_and_a_null_config_is_refused(tmp_path):
    assert parse_config({**MINIMAL, "_comment": "why this config exists"}).batch_size == 24
    path = tmp_path / "null.conf"
    path.write_text("null")
    with pytest.raises(SystemExit, match=r"null.conf: a config is a JSON object, not null"):
        read_config(path)


def test_main_refuses_a_misspelt_key_before_reading_any_data(tmp_path):
    config = {**MINIMAL, "database_path": str(tmp_path / "no_such_LA"), "batch_sise": 8}
    (tmp_path / "typo.conf").write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--config", "typo.conf", "--device", "cpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: typo.conf: unknown key 'batch_sise' (did you mean 'batch_size'?)"
    assert not (tmp_path / "exp_result").exists()  # nothing was created, nothing was read
