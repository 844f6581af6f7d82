"""PlatformIO `pre:` script: everything the tinydrift library needs besides its own sources.

1. The micro_speech front end's third-party C (microfrontend lib + kissfft), which is never
   committed: fetched once from the pinned sdist and extracted under build/third_party by
   td_third_party.py (beside this script), then compiled here with -DFIXED_POINT=16.
2. The model: the include/ folder of a model made by `tinydrift export` (td_model_NAME.{h,c},
   td_monitor_config_NAME.h, td_reference_NAME.h). Default ../models/kws; choose another
   with the environment variable TINYDRIFT_MODEL_DIR or the project option
   `custom_tinydrift_model_dir` (`tinydrift flash --model DIR` sets the variable). Its
   td_model_NAME.c is compiled, its folder put on the include path, and the app told the
   name (-DTD_APP_MODEL=NAME -DTD_APP_MODEL_UPPER=...) and the monitor's capacity
   (-DTD_MONITOR_MAX_SUMMARY, -DTD_MONITOR_MAX_CLASSES, read from the generated config).
   A streaming model (`tinydrift wakeword export`: its td_model_NAME.h defines
   TD_NAME_STREAMING) is built with the model's feature step (-DTD_FRONTEND_STEP_MS, from
   td_reference_NAME.h); with td_monitor_config_NAME.h beside it (`tinydrift wakeword
   calibrate`) the app runs the monitor too (-DTD_APP_STREAM_MONITOR=1).
3. Include paths of the library's folders, for the app and for the generated files.
"""

import os
import re
import sys
from pathlib import Path

Import("env")  # noqa: F821 (SCons injects it)

PROJECT_DIR = Path(env.subst("$PROJECT_DIR"))  # noqa: F821
REPO_ROOT = PROJECT_DIR.parent
LIB_SRC = PROJECT_DIR / "lib" / "tinydrift" / "src"
SCRIPTS_DIR = PROJECT_DIR / "scripts"
DEFAULT_MODEL_DIR = "../models/kws"
MODEL_DIR_VARIABLE = "TINYDRIFT_MODEL_DIR"


def fail(message: str) -> None:
    sys.stderr.write(f"tinydrift: {message}\n")
    env.Exit(1)  # noqa: F821


def third_party_sources():
    """The extracted front-end sources, fetched and checked by td_third_party.py beside this
    script (standard library only, loaded by path: no host package needed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("td_third_party", SCRIPTS_DIR / "td_third_party.py")
    third_party = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = third_party  # dataclasses look their module up by name
    spec.loader.exec_module(third_party)
    try:
        return third_party.microfrontend_sources(REPO_ROOT / "build" / "third_party")
    except third_party.ThirdPartyError as exc:
        fail(str(exc))


def model_folder():
    chosen = os.environ.get(MODEL_DIR_VARIABLE) or env.GetProjectOption(  # noqa: F821
        "custom_tinydrift_model_dir", DEFAULT_MODEL_DIR)
    folder = Path(chosen).expanduser()
    if not folder.is_absolute():
        folder = (PROJECT_DIR / folder).resolve()
    include = folder / "include" if (folder / "include").is_dir() else folder
    headers = sorted(include.glob("td_model_*.h"))
    if len(headers) != 1:
        fail(f"{include}: expected one td_model_NAME.h made by `tinydrift export`, found "
             f"{[h.name for h in headers] or 'none'}; set {MODEL_DIR_VARIABLE} to a model folder")
    name = headers[0].stem[len("td_model_"):]
    upper = name.upper()
    if f"#define TD_{upper}_STREAMING 1" in headers[0].read_text():
        return include, name, streaming_defines(include, name)
    config = include / f"td_monitor_config_{name}.h"
    needed = [include / f"td_model_{name}.c", config, include / f"td_reference_{name}.h"]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        fail(f"{include}: missing {', '.join(missing)}; run `tinydrift export` for that model")
    text = config.read_text()
    sizes = {}
    for what in ("N_SUMMARY", "N_CLASSES"):
        match = re.search(rf"#define TD_MONITOR_CONFIG_{name.upper()}_{what} (\d+)", text)
        if match is None:
            fail(f"{config}: no TD_MONITOR_CONFIG_{name.upper()}_{what}; regenerate it")
        sizes[what] = int(match.group(1))
    return include, name, [("TD_MONITOR_MAX_SUMMARY", sizes["N_SUMMARY"]),
                           ("TD_MONITOR_MAX_CLASSES", sizes["N_CLASSES"])]


def streaming_defines(include: Path, name: str) -> list:
    """A streaming detector's build: its front end's step; the monitor library at the input
    summary's 61 values (40 channel means, 20 at-floor counts, the loudness) and two classes ([1 - p, p]),
    run by the app when the folder holds a monitor config."""
    needed = [include / f"td_model_{name}.c", include / f"td_reference_{name}.h"]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        fail(f"{include}: missing {', '.join(missing)}; run `tinydrift wakeword export` for that model")
    match = re.search(rf"#define TD_{name.upper()}_FEATURE_STEP_MS (\d+)", needed[1].read_text())
    if match is None:
        fail(f"{needed[1]}: no TD_{name.upper()}_FEATURE_STEP_MS; run `tinydrift wakeword export` again")
    # With the monitor config `tinydrift wakeword calibrate` writes, the app runs the monitor.
    monitor = [("TD_APP_STREAM_MONITOR", 1)] if (include / f"td_monitor_config_{name}.h").is_file() else []
    return [("TD_FRONTEND_STEP_MS", int(match.group(1))), ("TD_MONITOR_MAX_SUMMARY", 63),
            ("TD_MONITOR_MAX_CLASSES", 2), *monitor]


sources = third_party_sources()
include, name, model_defines = model_folder()
# The app includes the model's headers through computed #include macros, which SCons's
# scanner cannot follow: a digest of them among the defines rebuilds the app when a new
# `tinydrift export` changes them (a stale HELLO hash was the symptom).
import hashlib  # noqa: E402

model_digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(include.glob("td_*")))).hexdigest()[:16]

env.Append(  # noqa: F821
    CPPPATH=[
        str(LIB_SRC),
        str(LIB_SRC / "frontend"),
        str(LIB_SRC / "monitor"),
        str(LIB_SRC / "protocol"),
        *map(str, sources.include_dirs),
        str(include),
    ],
    CPPDEFINES=[
        *sources.defines.items(),
        *model_defines,
        ("TD_APP_MODEL", name),
        ("TD_APP_MODEL_UPPER", name.upper()),
        ("TD_APP_MODEL_DIGEST", "0x" + model_digest),
    ],
)
relative = ["+<%s>" % os.path.relpath(path, sources.root) for path in sources.sources]
env.BuildSources("$BUILD_DIR/third_party", str(sources.root), ["-<*>", *relative])  # noqa: F821
env.BuildSources("$BUILD_DIR/model", str(include), ["-<*>", f"+<td_model_{name}.c>"])  # noqa: F821
print(f"tinydrift: model {name} from {include}")
