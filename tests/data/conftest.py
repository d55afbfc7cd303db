"""Tiny fixture datasets in the exact on-disk formats (written once per session, read-only)."""

from __future__ import annotations

import pytest

from lhl.data.testing import write_mtan, write_taskonomy


@pytest.fixture(scope="session")
def nyuv2_root(tmp_path_factory):
    return write_mtan(tmp_path_factory.mktemp("nyuv2"), "nyuv2", n_train=8, n_test=4, size=(16, 24))


@pytest.fixture(scope="session")
def cityscapes_root(tmp_path_factory):
    return write_mtan(tmp_path_factory.mktemp("cityscapes"), "cityscapes", n_train=8, n_test=4, size=(16, 24))


@pytest.fixture(scope="session")
def taskonomy_root(tmp_path_factory):
    return write_taskonomy(tmp_path_factory.mktemp("taskonomy"), size=(16, 16))
