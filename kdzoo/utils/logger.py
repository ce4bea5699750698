"""Logging: coloured console output on the main process, a plain log file per process."""

import logging
import os
import sys

from termcolor import colored


class _ColorfulFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        log = super().formatMessage(record)
        if record.levelno >= logging.ERROR:
            return colored("ERROR ", "red", attrs=["blink"]) + log
        if record.levelno == logging.WARNING:
            return colored("WARNING ", "red") + log
        return log


def setup_logger(output: str | None = None, rank: int = 0, name: str = "kdzoo") -> logging.Logger:
    """(Re)configure the ``kdzoo`` logger, replacing the handlers of an earlier call.

    Rank 0 logs INFO to stdout; every rank writes ``<output>/log.txt`` (other ranks add
    ``.rank<N>``) so a failure on any process leaves a trace.
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    plain = logging.Formatter("[%(asctime)s %(name)s]: %(message)s", datefmt="%m/%d %H:%M:%S")
    if rank == 0:
        console = logging.StreamHandler(stream=sys.stdout)
        console.setLevel(logging.INFO)
        console.setFormatter(
            _ColorfulFormatter(
                colored("[%(asctime)s %(name)s]: ", "green") + "%(message)s",
                datefmt="%m/%d %H:%M:%S",
            )
        )
        logger.addHandler(console)
    if output is not None:
        filename = os.path.join(output, "log.txt") if not output.endswith(".txt") else output
        if rank > 0:
            filename += f".rank{rank}"
        os.makedirs(os.path.dirname(filename) or ".", exist_ok=True)
        file_handler = logging.FileHandler(filename, mode="a")
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(plain)
        logger.addHandler(file_handler)
    return logger
