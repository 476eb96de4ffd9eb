"""Backend ``real``: each driver opens its pymeasure Instrument on the setup file's address with
the device's serial settings (pyvisa replaced at pymeasure's ``VISAAdapter`` boundary), and
reopens the same address after a lost connection."""

from __future__ import annotations

import re

import pytest
from pymeasure.adapters.protocol import ProtocolAdapter
from pyvisa import constants
from pyvisa.errors import VisaIOError

import hbtscope
from hbtscope.setup import default_setup_path

BLOCKS = {
    "stage": """  stage:
    driver: ThorlabsMDT693B
    backend: real
    address: ASRL3::INSTR
    limits:
      x_um: {min: 0.0, max: 80.0}
      y_um: {min: 0.0, max: 80.0}
      z_um: {min: -10.0, max: 10.0}
      max_voltage_V: 75
    settings:
      um_per_V: 1.2
      z_offset_um: -10.0
""",
    "led": """  led:
    driver: CoolLEDpE
    backend: real
    address: ASRL4::INSTR
    limits:
      max_fraction: 0.5
""",
    "powermeter": """  powermeter:
    driver: ThorlabsPM100
    backend: real
    address: USB0::0x1313::0x8072::P2000001::INSTR
""",
    "polariser": """  polariser:
    driver: ThorlabsFW102C
    backend: real
    address: ASRL5::INSTR
""",
}

SESSIONS = {
    "ASRL3::INSTR": [
        [
            ("vlimit?", "vlimit?\r[ 150]\r"),
            ("xvoltage?", "xvoltage?\r[   0.0]\r"),
            ("yvoltage?", "yvoltage?\r[   0.0]\r"),
            ("zvoltage?", "zvoltage?\r[   8.3]\r"),
        ]
    ],
    "ASRL4::INSTR": [
        [
            ("CSS?", "CoolLED precisExcite, Hello, pleased to meet you\r"),
            (None, "CSSASF000\r"),
            ("XMODEL", "XMODEL pE-100\r"),
            ("CSF", "CSSASF000\r"),  # safe state when the setup closes
        ]
    ],
    "USB0::0x1313::0x8072::P2000001::INSTR": [
        [
            ("SYST:SENSOR:IDN?", "S120C,123,01-Jan-2025,1,18,289"),
            ("SENS:CORR:WAV? MIN", "4.000000E+02"),
            ("SENS:CORR:WAV? MAX", "1.100000E+03"),
            ("SYST:ERR?", '0,"No error"'),
        ],
        [("MEAS:POW?", "1.500000E-06")],  # after the reconnection
    ],
    "ASRL5::INSTR": [[("pcount?", "pcount?\r6\r"), ("pos?", " pos?\r1\r")]],
}


def _with_role(text: str, role: str, block: str) -> str:
    pattern = re.compile(rf"^  {role}:[^\n]*\n(?:(?:    [^\n]*)?\n)*", re.M)
    assert pattern.search(text), f"no '{role}:' block in sim.yaml"
    return pattern.sub(lambda m: block, text, count=1)


@pytest.fixture()
def visa(monkeypatch):
    sessions = {k: [list(p) for p in v] for k, v in SESSIONS.items()}
    opened: list[tuple[str, dict, ProtocolAdapter]] = []

    def open_resource(resource_name, **kwargs):
        adapter = ProtocolAdapter(sessions[resource_name].pop(0))
        opened.append((resource_name, kwargs, adapter))
        return adapter

    monkeypatch.setattr("pymeasure.instruments.instrument.VISAAdapter", open_resource)
    monkeypatch.setattr("pymeasure.adapters.VISAAdapter", open_resource)
    return opened


def test_real_backends_open_the_address_with_the_device_settings(tmp_path, visa):
    text = default_setup_path().read_text()
    for role, block in BLOCKS.items():
        text = _with_role(text, role, block)
    path = tmp_path / "real.yaml"
    path.write_text(text)
    with hbtscope.open_setup(path, data_dir=tmp_path) as s:
        settings = {name: kwargs for name, kwargs, _ in visa}
        mdt = settings["ASRL3::INSTR"]
        assert mdt["asrl"]["baud_rate"] == 115200
        assert mdt["asrl"]["parity"] == constants.Parity.none
        assert (mdt["read_termination"], mdt["write_termination"]) == (">", "\r")
        led = settings["ASRL4::INSTR"]
        assert led["asrl"]["baud_rate"] == 57600
        assert (led["read_termination"], led["write_termination"]) == ("\n", "\r")
        fw = settings["ASRL5::INSTR"]
        assert fw["asrl"]["baud_rate"] == 115200 and fw["timeout"] == 15000
        pm = settings["USB0::0x1313::0x8072::P2000001::INSTR"]
        assert pm["read_termination"] == "\n" and "asrl" not in pm

        # a USB power meter unplugged and plugged back: the same address is reopened
        first = s.powermeter.inst.adapter

        def lost(*args, **kwargs):
            raise VisaIOError(constants.StatusCode.error_connection_lost)

        first._write = lost
        assert s.powermeter.read_power_W() == 1.5e-6
        assert [name for name, _, _ in visa].count("USB0::0x1313::0x8072::P2000001::INSTR") == 2
    for name, _, adapter in visa:
        assert adapter._index == len(adapter.comm_pairs), name  # every exchange happened
