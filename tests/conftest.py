import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import datagen  # noqa: E402

MODULES = os.path.join(os.path.dirname(__file__), "modules")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module(name):
    return os.path.join(MODULES, name + ".py")


@pytest.fixture(scope="session")
def penguin_examples():
    return os.path.abspath(datagen.PENGUIN_EXAMPLES)


@pytest.fixture(scope="session")
def binary_examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("binary")
    return datagen.write_examples(str(root), {"train": datagen.binary_columns(400, 0),
                                              "eval": datagen.binary_columns(200, 1)})


@pytest.fixture(scope="session")
def image_examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return datagen.write_examples(str(root), {"train": datagen.png_image_columns(48, 0),
                                              "eval": datagen.png_image_columns(16, 1)})
