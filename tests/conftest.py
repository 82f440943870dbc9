import gymnasium as gym
import pytest

import envfactory_gym

ENV_ID = "envfactory/Airline-v0"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def env():
    environment = gym.make(ENV_ID)
    yield environment
    environment.close()


@pytest.fixture(scope="session")
def package():
    return envfactory_gym.load_package("airline")
