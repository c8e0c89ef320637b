"""Search: what a user asks (``request.py``: ``SearchRequest`` and its one parser) and the one
runner that answers it (``runner.py``), with the pieces it joins: prompts and seeds to a query
vector (``prompts.py``), names in prompts (``names.py``), variety (``variety.py``), paths and
smooth order (``paths.py``); zero-shot labels and tags (``classify.py``)."""
