"""Config files, --set overrides, precedence, hashing and resolution (kgalign.config, training.settings)."""

from __future__ import annotations

import json

import pytest

from kgalign.config import (
    config_hash,
    deep_merge,
    diff_configs,
    load_config_file,
    parse_overrides,
    parse_value,
)
from kgalign.errors import InputError, MissingResourceError
from kgalign.training.settings import HASH_EXCLUDE, resolve_config, split_kwargs


def test_yaml_and_json_files_load_to_the_same_dict(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("model:\n  name: noco\n  hidden: 64\ntrain:\n  lr: 1.0e-3\n  betas: [0.8, 0.99]\n")
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"model": {"name": "noco", "hidden": 64}, "train": {"lr": 1e-3, "betas": [0.8, 0.99]}}))
    assert load_config_file(y) == load_config_file(j)
    assert load_config_file(y)["train"]["betas"] == [0.8, 0.99]


def test_bad_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  lr: 1\n  epochs: [1, 2\n")
    with pytest.raises(InputError) as e:
        load_config_file(p)
    assert e.value.path == str(p) and e.value.line is not None and e.value.line >= 3
    assert e.value.exit_code == 2


def test_bad_json_names_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"train": {\n "lr": 1e-3,\n}}')
    with pytest.raises(InputError) as e:
        load_config_file(p)
    assert e.value.line == 3


def test_non_mapping_and_missing_file(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="mapping"):
        load_config_file(p)
    with pytest.raises(MissingResourceError):
        load_config_file(tmp_path / "nope.yaml")


def test_set_values_are_typed():
    assert parse_value("256") == 256
    assert parse_value("1e-4") == pytest.approx(1e-4)
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True
    assert parse_value("[image, name]") == ["image", "name"]
    assert parse_value("null") is None
    assert parse_value("csls.l2r.mrr") == "csls.l2r.mrr"
    got = parse_overrides(["model.hidden=256", "train.lr=1e-3", "train.select_metric=cosine.l2r.hits@1"])
    assert got == {"model": {"hidden": 256}, "train": {"lr": 1e-3, "select_metric": "cosine.l2r.hits@1"}}


@pytest.mark.parametrize("bad", ["model.hidden", "=3", "a..b=1"])
def test_bad_set_items_are_refused(bad):
    with pytest.raises(InputError):
        parse_overrides([bad])


def test_deep_merge_and_hash_and_diff():
    a = {"train": {"lr": 1, "epochs": 5}, "model": {"name": "x"}}
    b = deep_merge(a, {"train": {"lr": 2}})
    assert b == {"train": {"lr": 2, "epochs": 5}, "model": {"name": "x"}} and a["train"]["lr"] == 1
    assert config_hash(a) != config_hash(b)
    assert config_hash({"x": 1, "y": 2}) == config_hash({"y": 2, "x": 1})
    assert diff_configs(a, b) == ["train.lr: 1 -> 2"]
    # excluded keys do not change the hash
    c = deep_merge(a, {"train": {"device": "cuda"}})
    d = deep_merge(a, {"train": {"device": "cpu"}})
    assert config_hash(c, ["train.device"]) == config_hash(d, ["train.device"])


def test_resolve_fills_model_and_training_defaults(tmp_path):
    cfg = resolve_config({}, dataset=tmp_path, model="NoCo")
    assert cfg["model"]["name"] == "noco"
    assert cfg["model"]["hidden"] == 300  # registry default
    assert cfg["train"]["batch_size"] == 3500 and cfg["train"]["lr"] == 5e-4
    assert cfg["train"]["select_on"] == "valid"
    assert cfg["dataset"] == str(tmp_path.resolve())
    assert cfg["iterative"]["start"] == cfg["train"]["epochs"] // 2
    mclea = resolve_config({}, dataset=tmp_path, model="mclea")
    assert mclea["train"]["weight_decay"] == pytest.approx(1e-2)  # the reference run's value (registry)


def test_resolve_precedence_file_set_flags(tmp_path):
    file_cfg = {"model": {"name": "meaformer", "hidden": 64}, "train": {"lr": 1e-3, "epochs": 7}}
    set_cfg = parse_overrides(["train.lr=2e-3", "model.hidden=48"])
    flags = {"train": {"lr": 3e-3}}
    cfg = resolve_config(deep_merge(deep_merge(file_cfg, set_cfg), flags), dataset=tmp_path)
    assert cfg["model"]["name"] == "meaformer"
    assert cfg["train"]["lr"] == 3e-3  # flag beats --set beats file
    assert cfg["model"]["hidden"] == 48  # --set beats file
    assert cfg["train"]["epochs"] == 7  # file beats defaults


@pytest.mark.parametrize(
    "user, match",
    [
        ({"trian": {}}, "unknown config section"),
        ({"train": {"learning_rate": 1}}, "train.learning_rate"),
        ({"model": {"hiddn": 3}}, "hiddn"),
        ({"train": {"select_on": "tset"}}, "select_on"),
        ({"train": {"select_metric": "csls.l2r.foo"}}, "train.select_metric"),
        ({"train": {"select_metric": "mrr"}}, "train.select_metric"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"epochs": 2.5}}, "train.epochs"),
        ({"train": {"amp": "fp8"}}, "train.amp"),
        ({"iterative": {"start": 999}}, "iterative.start"),
    ],
)
def test_resolve_refuses_bad_options(tmp_path, user, match):
    with pytest.raises(InputError, match=match):
        resolve_config(user, dataset=tmp_path, model="noco")


def test_unknown_model_and_missing_model(tmp_path):
    with pytest.raises(InputError, match="unknown model"):
        resolve_config({}, dataset=tmp_path, model="transe")
    with pytest.raises(InputError, match="no model"):
        resolve_config({}, dataset=tmp_path)


def test_python_kwargs_route_to_sections():
    got = split_kwargs({"lr": 1e-3, "hidden": 32, "iterative": True, "iterative__start": 4, "csls_k": 5, "model__tau": 0.2}, "noco")
    assert got == {
        "train": {"lr": 1e-3},
        "model": {"hidden": 32, "tau": 0.2},
        "iterative": {"enabled": True, "start": 4},
        "eval": {"csls_k": 5},
    }


def test_hash_ignores_device_only(tmp_path):
    a = resolve_config({"train": {"device": "cpu"}}, dataset=tmp_path, model="noco")
    b = resolve_config({"train": {"device": "cuda"}}, dataset=tmp_path, model="noco")
    c = resolve_config({"train": {"device": "cpu", "seed": 1}}, dataset=tmp_path, model="noco")
    assert config_hash(a, HASH_EXCLUDE) == config_hash(b, HASH_EXCLUDE)
    assert config_hash(a, HASH_EXCLUDE) != config_hash(c, HASH_EXCLUDE)


@pytest.mark.parametrize("text", ["train: &a\n  lr: 0.1\n  more: *a\n", "model: &m [1, *m]\n"], ids=["mapping-alias", "list-alias"])
def test_self_referencing_yaml_alias_is_one_message(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="self-reference"):
        load_config_file(path)


@pytest.mark.parametrize("bad", [{"train": 5}, {"train": ["lr"]}, {"model": 3}, {"eval": [1]}])
def test_sections_must_be_mappings(tmp_path, bad):
    with pytest.raises(InputError, match="must be a mapping of options"):
        resolve_config(bad, dataset=tmp_path, model="noco")


def test_model_name_alone_is_short_for_the_model_section(tmp_path):
    assert resolve_config({"model": "MCLEA"}, dataset=tmp_path)["model"]["name"] == "mclea"


@pytest.mark.parametrize(
    "user, match",
    [
        ({"train": {"device": 1}}, "train.device"),
        ({"train": {"device": "gpu"}}, "train.device"),
        ({"iterative": {"lr_factor": "abc"}}, "iterative.lr_factor"),
        ({"iterative": {"lr_factor": float("nan")}}, "iterative.lr_factor"),
        ({"iterative": {"reload_best": "maybe"}}, "iterative.reload_best"),
        ({"train": {"patience": True}}, "train.patience"),
        ({"eval": {"csls_k": True}}, "eval.csls_k"),
    ],
)
def test_every_option_is_checked_before_anything_runs(tmp_path, user, match):
    with pytest.raises(InputError, match=match):
        resolve_config(user, dataset=tmp_path, model="noco")


def test_python_values_and_yaml_off_are_accepted(tmp_path):
    from pathlib import Path

    from kgalign.training.settings import build_config

    cfg = build_config(
        tmp_path,
        "noco",
        kwargs={"betas": (0.9, 0.99), "modalities": ("relation",), "decisions": Path("d.tsv"), "amp": False, "device": "CPU"},
    )
    t = cfg["train"]
    assert t["betas"] == [0.9, 0.99] and cfg["modalities"] == ["relation"] and t["amp"] == "off" and t["device"] == "cpu"
    assert t["decisions"].endswith("d.tsv")


def test_model_shorthand_survives_set_overrides_and_the_api_reads_the_file(tmp_path):
    from kgalign.training.settings import build_config

    path = tmp_path / "m.yaml"
    path.write_text("model: mclea\n", encoding="utf-8")
    cfg = build_config(tmp_path, None, config=path, sets=["model.hidden=20"], default_model="noco")
    assert cfg["model"]["name"] == "mclea" and cfg["model"]["hidden"] == 20
    assert build_config(tmp_path, None, default_model="noco")["model"]["name"] == "noco"
