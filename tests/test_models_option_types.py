"""Model options from config files and --set are type-checked against the registry defaults."""

import pytest

from kgalign.errors import InputError
from kgalign.models.registry import check_option_types, get_model, list_models


@pytest.mark.parametrize("name", list_models())
def test_defaults_pass_their_own_check(name):
    check_option_types(name, dict(get_model(name).defaults))


def test_wrong_types_are_named():
    with pytest.raises(InputError, match="option hidden must be a int like 300, got 'abc'"):
        check_option_types("noco", {"hidden": "abc"})
    with pytest.raises(InputError, match="hidden"):
        check_option_types("meaformer", {"hidden": 2.5})
    check_option_types("noco", {"tau": 1})  # an int where a float is expected is fine
