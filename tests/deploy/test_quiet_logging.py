"""quiet_loggers: the converters' INFO lines hidden unless verbose, and the levels restored after."""

from __future__ import annotations

import logging

import pytest

from centernet_lightning.deploy.quiet_logging import quiet_loggers, root_logging_kept


def test_quiet_loggers_hides_info_unless_verbose_and_restores_the_level(caplog: pytest.LogCaptureFixture) -> None:
    logger, child = logging.getLogger("centernet-test"), logging.getLogger("centernet-test.pass")
    with caplog.at_level(logging.INFO, logger="centernet-test"):  # a library that sets its logger to INFO
        with quiet_loggers(["centernet-test"]):
            logger.info("hidden")
            child.info("hidden too")  # a child without a level of its own follows its parent
            logger.warning("shown")
        with quiet_loggers(["centernet-test"], verbose=True):
            logger.info("shown with verbose")
        assert logger.level == logging.INFO
    assert [record.getMessage() for record in caplog.records] == ["shown", "shown with verbose"]


def test_quiet_loggers_restores_the_levels_after_an_error() -> None:
    logger = logging.getLogger("centernet-test.raiser")
    logger.setLevel(logging.DEBUG)
    with pytest.raises(RuntimeError), quiet_loggers(["centernet-test.raiser"], level=logging.ERROR):
        assert logger.level == logging.ERROR
        raise RuntimeError("converter failed")
    assert logger.level == logging.DEBUG


def test_root_logging_kept_undoes_a_library_rewiring_the_root_logger() -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with root_logging_kept():
        root.setLevel(logging.ERROR)
        root.addHandler(logging.NullHandler())
    assert root.level == level and root.handlers == handlers
