import pytest

from edgebnn.errors import UsageError
from edgebnn.registry import create_model, get_card, list_models


def test_aliases_resolve_to_one_card():
    assert get_card("quickstart").name == "bireal-tiny"
    assert get_card("BiReal_Tiny").name == "bireal-tiny"
    assert get_card("quicknetsmall").name == "quicknet-small"


def test_unknown_name_suggests_nearest():
    with pytest.raises(UsageError, match=r"unknown model 'quiknet'.*did you mean.*quicknet"):
        get_card("quiknet")


def test_larq_zoo_models_are_registered():
    names = {c.name for c in list_models()}
    expected = {
        "quicknet", "quicknet-small", "quicknet-large", "birealnet", "binary-resnet-e18",
        "binary-densenet-28", "binary-densenet-37", "binary-densenet-45", "real-to-binary",
        "meliusnet-22", "xnornet", "binary-alexnet", "dorefanet",
    }
    assert expected <= names


def test_pattern_filters():
    assert {c.name for c in list_models("quicknet*")} == {"quicknet", "quicknet-small", "quicknet-large"}


@pytest.mark.parametrize("card", list_models(), ids=lambda c: c.name)
def test_every_model_builds_at_small_input(card):
    import tf_keras as keras

    size = max(32, card.min_input_size)
    model = create_model(card.name, input_shape=(size, size, 3), num_classes=7)
    assert model.output_shape == (None, 7)
    keras.backend.clear_session()
