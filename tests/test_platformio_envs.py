"""The real boards' envs cannot be built here (their registry platforms need the internet),
so check statically what can be checked: every env names a port folder that implements
the whole porting header, and the Renode scripts and Robot test point at envs and board
names that exist."""

from __future__ import annotations

import configparser
import re

import pytest

from tinydrift.firmware import REPO_ROOT

FIRMWARE = REPO_ROOT / "firmware"
PORT_HEADER = FIRMWARE / "lib" / "tinydrift" / "src" / "td_port.h"
RENODE = FIRMWARE / "renode"


def project() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(FIRMWARE / "platformio.ini")
    return parser


def envs() -> dict[str, configparser.SectionProxy]:
    parser = project()
    return {name[4:]: parser[name] for name in parser.sections() if name.startswith("env:")}


def option(env: configparser.SectionProxy, name: str) -> str:
    """An env's option as PlatformIO resolves it through `extends` (then [env])."""
    parser = env.parser
    while name not in env and "extends" in env:
        env = parser[env["extends"].strip()]
    return env.get(name, parser["env"].get(name, ""))


def port_of(env: configparser.SectionProxy) -> str:
    match = re.search(r"\+<\.\./port/(\w+)/>", option(env, "build_src_filter"))
    assert match, f"{env.name} builds no port folder"
    return match.group(1)


def declared_functions() -> list[str]:
    """Functions td_port.h declares for the ports to define (not its static inline ones)."""
    text = PORT_HEADER.read_text()
    names = re.findall(r"^\s*(?:__attribute__\(\(\w+\)\)\s*)?[\w ]+?\*?\s*(td_port_\w+)\([^)]*\);",
                       text, flags=re.MULTILINE)
    return sorted(set(names))


PORT_DEFAULTS = FIRMWARE / "lib" / "tinydrift" / "src" / "app" / "td_app_port_defaults.c"


def optional_functions() -> list[str]:
    """Porting functions the library gives a weak default for: a port may leave them out."""
    return sorted(re.findall(r"^TD_PORT_WEAK [\w ]+?\s(td_port_\w+)\(", PORT_DEFAULTS.read_text(), flags=re.MULTILINE))


def test_the_header_declares_the_whole_porting_interface():
    assert declared_functions() == sorted([
        "td_port_init", "td_port_write", "td_port_read", "td_port_millis", "td_port_cycles",
        "td_port_cycle_hz", "td_port_board_name", "td_port_exit", "td_port_mic_start",
        "td_port_mic_read", "td_port_mic_dropped", "td_port_device_id", "td_port_boot_count",
        "td_port_camera_start", "td_port_camera_read", "td_port_keep_save", "td_port_keep_load",
    ])
    # the board's identity for HELLO: optional, 0 (unknown) unless the port knows better; a
    # camera: optional, none unless the board has one (the app's image mode replays instead);
    # storage across power cycles: optional, none (every boot learns its reference anew)
    assert optional_functions() == sorted(["td_port_boot_count", "td_port_device_id",
                                           "td_port_camera_read", "td_port_camera_start",
                                           "td_port_keep_load", "td_port_keep_save"])


@pytest.mark.parametrize("env_name", sorted(envs()))
def test_every_env_builds_a_port_that_defines_every_porting_function(env_name):
    port = FIRMWARE / "port" / port_of(envs()[env_name])
    sources = "\n".join(p.read_text() for p in sorted(port.iterdir())
                        if p.suffix in {".c", ".cpp"})
    for function in sorted(set(declared_functions()) - set(optional_functions())):
        definition = re.compile(rf"^(?:extern \"C\" )?[\w ]+?\*?\s*{function}\([^;{{]*\)\s*\{{",
                                flags=re.MULTILINE)
        assert definition.search(sources), f"{port.name} does not define {function}"
    # The application's entry is called by the port, whichever entry point the board has.
    assert "td_app_main()" in sources


def test_the_emulated_env_uses_the_local_platform_and_the_real_boards_their_registry_ones():
    all_envs = envs()
    assert option(all_envs["mps2_an386"], "platform") == "symlink://platforms/tinydrift-qemu"
    expected = {"nano33ble": "nordicnrf52", "esp32s3": "espressif32",
                "nucleo_f446re": "ststm32", "disco_f407vg": "ststm32"}
    for env_name, platform in expected.items():
        assert option(all_envs[env_name], "platform") == platform
    assert option(all_envs["nano33ble_renode"], "platform") == "nordicnrf52"


RESC_ELF = re.compile(r"\$elf\?=@\$ORIGIN/\.\./\.pio/build/(\w+)/firmware\.elf")


@pytest.mark.parametrize("script", sorted(p.name for p in RENODE.glob("*.resc")))
def test_renode_scripts_boot_an_env_of_this_project(script):
    text = (RENODE / script).read_text()
    match = RESC_ELF.search(text)
    assert match, f"{script} does not take its ELF from the PlatformIO build"
    assert match.group(1) in envs()
    assert re.search(r"LoadPlatformDescription @platforms/boards/\w[\w-]*\.repl", text)


def test_robot_test_waits_for_the_hello_line_of_each_renode_board():
    robot = (RENODE / "tinydrift.robot").read_text()
    all_envs = envs()
    cases = re.findall(r"Boot\s{2,}(\S+\.resc)\s{2,}\$\{(\w+)_ELF\}\s{2,}(sysbus\.\w+)\s*\n"
                       r"\s+Says Hello, Echoes And Exits\s{2,}(\w+)", robot)
    assert {case[0] for case in cases} == {p.name for p in RENODE.glob("*.resc")}
    for script, elf_variable, uart, board in cases:
        env_name = re.search(rf"\${{{elf_variable}_ELF}}\s+\$\{{CURDIR}}/\.\./\.pio/build/(\w+)/",
                             robot).group(1)
        resc_env = RESC_ELF.search((RENODE / script).read_text()).group(1)
        assert env_name == resc_env
        port = FIRMWARE / "port" / port_of(all_envs[env_name])
        names = re.findall(r'return "(\w+)";',
                           "".join(p.read_text() for p in port.iterdir() if p.suffix in {".c", ".cpp"}))
        assert board in names, f"{port.name} never calls itself {board}"
