"""Model options: one validator (names, types, ranges) and the line between bad input and bugs."""

import pytest

from kgalign.errors import InputError
from kgalign.models.registry import build_model, get_model, list_models, validate_options
from kgalign.models.synthetic import aligned_pair


@pytest.mark.parametrize("name", list_models())
def test_defaults_pass_their_own_check(name):
    validate_options(name, dict(get_model(name).defaults))


def test_wrong_types_are_named():
    with pytest.raises(InputError, match="option hidden must be a int like 300, got 'abc'"):
        validate_options("noco", {"hidden": "abc"})
    with pytest.raises(InputError, match="hidden"):
        validate_options("meaformer", {"hidden": 2.5})
    validate_options("noco", {"tau": 1})  # an int where a float is expected is fine


@pytest.mark.parametrize(
    "option, value, interval",
    [
        ("hidden", -1, r"\[1, inf\)"),
        ("hidden", 0, r"\[1, inf\)"),
        ("tau", 0.0, r"\(0, inf\)"),
        ("alpha", 1.5, r"\[0, 1\]"),
        ("gat_attn_dropout", 1.0, r"\[0, 1\)"),
        ("noise_target_cos", float("nan"), r"\(0, 1\)"),
    ],
)
def test_out_of_range_options_name_the_interval(option, value, interval):
    with pytest.raises(InputError, match=f"option {option} must be in {interval}"):
        validate_options("noco", {option: value})


def test_unknown_option_lists_the_known_ones():
    with pytest.raises(InputError, match="has no option.*hiden.*options: .*hidden"):
        validate_options("noco", {"hiden": 3})


def test_impossible_combination_is_bad_input_not_a_traceback():
    inputs = aligned_pair(n_base=20, seed=0)[0]
    with pytest.raises(InputError, match="model 'noco': dim 3 is not divisible by heads 2"):
        build_model("noco", inputs, hidden=3)


def test_a_type_error_inside_model_code_is_not_reported_as_bad_options(monkeypatch):
    inputs = aligned_pair(n_base=20, seed=0)[0]
    spec = get_model("mclea")

    def broken(self, *args, **kwargs):
        raise TypeError("unsupported operand type(s) inside the model")

    monkeypatch.setattr(spec.cls, "__init__", broken)
    monkeypatch.setattr("kgalign.models.registry.signature_defaults", lambda cls: {})
    with pytest.raises(TypeError, match="inside the model"):
        build_model("mclea", inputs)
