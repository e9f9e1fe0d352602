"""Real-ComfyUI harness: build an environment, start a ComfyUI server, drive it over HTTP.

Standard library only, so that a bare ``python3`` can run ``python3 -m nodes.harness ...`` from the
repository root before anything is installed. Nothing here imports ComfyUI or torch.

- :mod:`.env`: ``ensure_env()`` builds (once) a cached venv with torch and ComfyUI 0.3.75.
- :mod:`.server`: ``ComfyServer`` starts a real ComfyUI with this pack in its ``custom_nodes``.
- :mod:`.client`: ``ComfyClient`` queues prompts, waits, downloads outputs; ``load_workflow``.
"""
