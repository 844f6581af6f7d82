"""The wheel carries the firmware's C library, as emlearn ships its headers: the portable
core (firmware/lib/tinydrift), its C test harnesses, the third-party fetch script and the
emulated board's description go to tinydrift/_firmware, where tinydrift.firmware finds them
outside a clone. An editable install reads firmware/ in place instead."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = [  # relative to firmware/
    "lib/tinydrift",
    "test",
    "scripts/td_third_party.py",
    "platforms/tinydrift-qemu/boards",
    "port/mps2_an386",
    "port/host",
]


class BuildPyWithFirmware(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "tinydrift" / "_firmware"
        if target.exists():
            shutil.rmtree(target)
        for item in SHIPPED:
            source = ROOT / "firmware" / item
            if source.is_dir():
                shutil.copytree(source, target / item, ignore=shutil.ignore_patterns("__pycache__", ".pio"))
            else:
                (target / item).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / item)


setup(cmdclass={"build_py": BuildPyWithFirmware})
