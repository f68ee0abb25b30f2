"""LLM-written prior policies for CAMEL: env cards, prompts, an OpenAI-compatible client, the static
checker, the process sandbox, rollout screening and prior files with provenance.

Submodules are imported directly (``from robolearn.llm.checker import check_source``); this package
file stays empty so the sandbox child process can import the light modules without pulling in
gymnasium, yaml or openai.
"""
