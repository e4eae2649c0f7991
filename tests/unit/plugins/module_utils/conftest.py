# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, ScriptedTransport


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def transport(clock: FakeClock) -> ScriptedTransport:
    return ScriptedTransport(clock)


@pytest.fixture
def agent(transport: ScriptedTransport, clock: FakeClock) -> GuestAgent:
    return GuestAgent(transport, name="vm-under-test", clock=clock, sleep=clock.sleep)
