"""AI assistance for applications and information requests; a person always decides.

Triage and review: :mod:`~datenlabor.assist.inbox` (requests as pool data),
:mod:`~datenlabor.assist.taxonomy`, :mod:`~datenlabor.assist.triage` (model, rules,
evaluation, optional LLM), :mod:`~datenlabor.assist.registry` (model versions),
:mod:`~datenlabor.assist.review` (queue, decisions, decision log),
:mod:`~datenlabor.assist.demo_requests`. Knowledge base and answer drafts:
:mod:`~datenlabor.assist.kb`, :mod:`~datenlabor.assist.answer`, :mod:`~datenlabor.assist.llm`.
See docs/assist.md.
"""
