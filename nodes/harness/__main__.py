"""``python3 -m nodes.harness <command>``: set up, serve, demo, test and run workflows in a real ComfyUI.

Runs with a bare system python3 from the repository root; see ``--help``.
"""

from __future__ import annotations

import argparse
import glob
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .client import ComfyClient, Prompt, WaitStatus, load_workflow
from .env import Env, ensure_env, repo_root
from .server import DEFAULT_PROBE_NODE, ComfyServer

DEFAULT_SERVER = "http://127.0.0.1:8188"
DEFAULT_WORKFLOWS = "workflows/api/*.json"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}  # demo inputs to upload
FAILURES = (RuntimeError, ValueError, OSError)  # ConnectionError and TimeoutError are OSErrors


def say(message: str) -> None:
    print(f"[gan-edit] {message}", flush=True)


def progress_printer(label: str) -> Callable[[WaitStatus], None]:
    """An ``on_progress`` callback: one updating line on a terminal, a line per change otherwise."""
    last = {"text": "", "printed_at": 0.0}
    tty = sys.stdout.isatty()

    def report(status: WaitStatus) -> None:
        where = f"pending, {status.position} ahead" if status.state == "pending" else status.state
        text = f"{label}: {where}"
        if tty:
            print(f"\r[gan-edit] {text} ({status.elapsed:.0f} s)\033[K", end="", flush=True)
        elif text != last["text"] or time.monotonic() - last["printed_at"] > 15:
            say(f"{text} ({status.elapsed:.0f} s)")
            last.update(text=text, printed_at=time.monotonic())

    return report


def end_progress_line() -> None:
    if sys.stdout.isatty():
        print("\r\033[K", end="", flush=True)


def make_server(args: argparse.Namespace, env: Env, base_dir: Path | None = None) -> ComfyServer:
    probe = None if args.no_probe else args.probe
    pack_dir = getattr(args, "pack_dir", None)
    return ComfyServer(env, port=args.port, probe_node=probe, pack_dir=pack_dir, base_dir=base_dir)


def sample_inputs() -> list[Path]:
    """The sample photos of workflows/inputs/ (what the example workflows load)."""
    inputs_dir = repo_root() / "workflows" / "inputs"
    return sorted(p for p in inputs_dir.glob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def upload_all(client: ComfyClient, files: Sequence[Path]) -> None:
    for path in files:
        name = client.upload_image(path)
        say(f"uploaded {path} as {name}")


def run_workflow(client: ComfyClient, path: Path, prompt: Prompt, out_dir: Path, timeout: float) -> list[Path]:
    """Queue one API-format workflow, wait with a progress line, download its outputs."""
    started = time.monotonic()
    try:
        written = client.run(prompt, out_dir, stem=path.stem, timeout=timeout, on_progress=progress_printer(path.name))
    finally:
        end_progress_line()
    say(f"{path.name}: done in {time.monotonic() - started:.1f} s, {len(written)} file(s)")
    return written


def list_written(files: Sequence[Path], out_dir: Path) -> None:
    say(f"wrote {len(files)} file(s) to {out_dir.resolve()}:")
    for path in files:
        print(f"  {path.name}")


# -- commands -----------------------------------------------------------------------------------------
def cmd_setup(args: argparse.Namespace) -> int:
    env = ensure_env()
    say(f"python:  {env.python}")
    say(f"ComfyUI: {env.comfyui_dir}")
    say("mode:    " + ("managed cache " + str(env.cache_dir) if env.managed else "COMFYUI_PATH (nothing installed)"))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    env = ensure_env()
    base = (args.base or env.cache_dir / "serve").resolve()
    say(f"starting ComfyUI in {base} (input/, output/, models/gan_edit/ are kept between runs) ...")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with make_server(args, env, base_dir=base) as server:
        say(f"ComfyUI {server.url} is up after {server.startup_seconds:.1f} s (log: {server.log_path})")
        upload_all(ComfyClient(server.url), sample_inputs())
        say(f"put weights in {base / 'models' / 'gan_edit'}, images in {server.input_dir}; outputs go to "
            f"{server.output_dir}")
        say("press Ctrl-C to stop")
        try:
            while server.running():
                time.sleep(0.5)
        except KeyboardInterrupt:
            print()
            say("stopping ComfyUI ...")
            return 0
        say(f"ComfyUI exited on its own; last lines of {server.log_path}:\n{server.log_tail()}")
        return 1


def cmd_demo(args: argparse.Namespace) -> int:
    pattern = args.workflows or str(repo_root() / DEFAULT_WORKFLOWS)
    workflows = [Path(p) for p in sorted(glob.glob(pattern))]
    if not workflows:
        say(f"no API-format workflows match {pattern}: nothing to run")
        return 1
    inputs = sample_inputs()
    env = ensure_env()
    say(f"starting ComfyUI for {len(workflows)} workflow(s) ...")
    written: list[Path] = []
    failed: list[str] = []
    with make_server(args, env) as server:
        say(f"ComfyUI {server.url} is up after {server.startup_seconds:.1f} s")
        client = ComfyClient(server.url)
        upload_all(client, inputs)
        for number, path in enumerate(workflows, 1):
            say(f"[{number}/{len(workflows)}] {path.name}")
            try:
                written += run_workflow(client, path, load_workflow(path), args.out, args.timeout)
            except FAILURES as error:
                failed.append(path.name)
                say(f"{path.name} FAILED:\n{error}")
    list_written(written, args.out)
    if failed:
        say(f"{len(failed)} of {len(workflows)} workflow(s) failed: {', '.join(failed)}")
        return 1
    return 0


def cmd_workflows(args: argparse.Namespace) -> int:
    """Regenerate workflows/<name>.json (UI format) and <name>.jpg from workflows/api/<name>.json."""
    env = ensure_env()
    try:
        import PIL  # noqa: F401  (the thumbnails need Pillow: run in the environment's python)
    except ImportError:
        os.execv(str(env.python), [str(env.python), "-m", "nodes.harness", *sys.argv[1:]])
    import json
    import tempfile

    from .ui_format import api_to_ui, first_outputs, thumbnail

    root = repo_root() / "workflows"
    inputs = sorted(p for p in (root / "inputs").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    with make_server(args, env) as server, tempfile.TemporaryDirectory() as tmp:
        client = ComfyClient(server.url)
        upload_all(client, inputs)
        info = client.object_info()
        for path in sorted((root / "api").glob("*.json")):
            if args.names and path.stem not in args.names:
                continue
            prompt = load_workflow(path)
            (root / path.name).write_text(json.dumps(api_to_ui(prompt, info), indent=2) + "\n")
            files = run_workflow(client, path, prompt, Path(tmp) / path.stem, args.timeout)
            thumbnail(first_outputs(files), root / f"{path.stem}.jpg")
            say(f"wrote workflows/{path.name} and workflows/{path.stem}.jpg")
    return 0


def cmd_test(pytest_args: Sequence[str]) -> int:
    env = ensure_env()
    if not env.managed:
        check = subprocess.run([str(env.python), "-c", "import pytest"], capture_output=True, check=False)
        if check.returncode != 0:
            say(f"{env.python} has no pytest; install it there: {env.python} -m pip install pytest")
            return 2
    command = [str(env.python), "-m", "pytest", *pytest_args]
    say(f"running {' '.join(command[1:])} with {env.python}")
    sys.stdout.flush()
    os.chdir(repo_root())
    os.execv(command[0], command)  # pytest's exit code becomes ours


def cmd_train(train_args: Sequence[str]) -> int:
    """`python -m nodes.train ARGS...` with the environment's python (torch, Pillow, safetensors), in this
    folder: relative paths in ARGS keep meaning what they mean here."""
    env = ensure_env()
    command = [str(env.python), "-m", "nodes.train", *train_args]
    say(f"running {' '.join(command[1:])} with {env.python}")
    sys.stdout.flush()
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(repo_root()) + (os.pathsep + path if path else "")
    os.execv(command[0], command)  # the training command's exit code becomes ours


def cmd_run(args: argparse.Namespace) -> int:
    if args.server and args.start:
        raise ValueError("give either --server URL or --start, not both")
    if args.start:
        with make_server(args, ensure_env()) as server:
            say(f"ComfyUI {server.url} is up after {server.startup_seconds:.1f} s")
            return run_against(server.url, args)
    return run_against(args.server or DEFAULT_SERVER, args)


def run_against(url: str, args: argparse.Namespace) -> int:
    client = ComfyClient(url)
    prompt = load_workflow(args.workflow, args.set)  # bad overrides fail before anything is uploaded
    upload_all(client, args.upload)
    written = run_workflow(client, args.workflow, prompt, args.out, args.timeout)
    list_written(written, args.out)
    return 0


# -- parser -------------------------------------------------------------------------------------------
def add_server_options(parser: argparse.ArgumentParser, pack_dir: bool = False) -> None:
    group = parser.add_argument_group("server started by this command")
    group.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    group.add_argument(
        "--probe", default=DEFAULT_PROBE_NODE, metavar="NODE",
        help=f"node that must be registered after start-up (default: {DEFAULT_PROBE_NODE})",
    )  # fmt: skip
    group.add_argument("--no-probe", action="store_true", help="skip the probe-node check")
    if pack_dir:
        group.add_argument(
            "--pack-dir", type=Path, default=None,
            help="custom node folder to load instead of this repository",
        )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m nodes.harness",
        description="Run this pack in a real ComfyUI 0.3.75 (built once under $GAN_EDIT_CACHE, default "
        "~/.cache/comfyui-gan-edit; or your own: COMFYUI_PATH=<checkout> [COMFYUI_PYTHON=<python>]).",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("setup", help="build the cached venv + ComfyUI (about 2 minutes once; then instant)")

    serve = commands.add_parser("serve", help="start ComfyUI with this pack and keep it running until Ctrl-C")
    serve.add_argument("--base", type=Path, default=None,
                       help="the server's folder, kept between runs (default: <cache>/serve); its models/gan_edit/ "
                       "takes weights, input/ images")
    add_server_options(serve, pack_dir=True)

    demo = commands.add_parser("demo", help="run every API-format workflow in a fresh ComfyUI, save outputs")
    demo.add_argument("--out", type=Path, default=Path("output/demo"), help="output folder (default: %(default)s)")
    demo.add_argument("--workflows", metavar="GLOB", help=f"workflow files (default: <repo>/{DEFAULT_WORKFLOWS})")
    demo.add_argument("--timeout", type=float, default=600.0, help="seconds per workflow (default: %(default)s)")
    add_server_options(demo, pack_dir=True)

    commands.add_parser(
        "test",
        usage="%(prog)s [PYTEST ARGS ...]", help="run pytest in the cached venv; every further argument goes to pytest",
        description="Run `python -m pytest [ARGS...]` with the environment's python in the repository "
        "root and exit with pytest's exit code. Example: python3 -m nodes.harness test -m unit -x",
        allow_abbrev=False,
    )  # fmt: skip

    commands.add_parser(
        "train",
        usage="%(prog)s COMMAND [ARGS ...]",
        help="run `python -m nodes.train` in the cached venv; every further argument goes to it",
        description="Run `python -m nodes.train [ARGS...]` (training, evaluation, conversion, the photo set) with "
        "the environment's python, from the current folder. Example: python3 -m nodes.harness train enhance "
        "--help",
        allow_abbrev=False,
    )  # fmt: skip

    run = commands.add_parser("run", help="queue one API-format workflow on a server and save its outputs")
    run.add_argument("workflow", type=Path, metavar="WORKFLOW.json", help="API-format workflow")
    run.add_argument("--server", metavar="URL", help=f"running ComfyUI (default: {DEFAULT_SERVER})")
    run.add_argument("--start", action="store_true", help="start a fresh ComfyUI for this run instead")
    run.add_argument(
        "--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
        help="override an input; NODE is a node id or its title; VALUE is JSON or a string (repeatable)",
    )  # fmt: skip
    run.add_argument(
        "--upload",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="upload a file to ComfyUI's input folder first (repeatable)",
    )
    run.add_argument("--out", type=Path, default=Path("output/run"), help="output folder (default: %(default)s)")
    run.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default: %(default)s)")
    add_server_options(run, pack_dir=True)

    workflows = commands.add_parser(
        "workflows", help="regenerate the UI-format workflows and thumbnails from workflows/api/*.json"
    )
    workflows.add_argument("names", nargs="*", help="only these workflows (file names without .json; default: all)")
    workflows.add_argument("--timeout", type=float, default=600.0, help="seconds per workflow (default: %(default)s)")
    add_server_options(workflows, pack_dir=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the command, turn failures into a message and exit code 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if argv[:1] == ["test"] and argv[1:2] not in (["-h"], ["--help"]):
            return cmd_test(argv[1:])  # everything after "test" belongs to pytest, unparsed
        if argv[:1] == ["train"] and argv[1:2] not in (["-h"], ["--help"]):
            return cmd_train(argv[1:])  # everything after "train" belongs to nodes.train, unparsed
        args = parser.parse_args(argv)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except FAILURES as error:
        say(f"error: {error}")
        return 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "setup": cmd_setup,
    "serve": cmd_serve,
    "demo": cmd_demo,
    "run": cmd_run,
    "workflows": cmd_workflows,
}

if __name__ == "__main__":
    sys.exit(main())
