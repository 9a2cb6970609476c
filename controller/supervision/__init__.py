"""Supervision: rules turn accepted facts into findings (alerts now; holds and gate
commands as the later device kinds arrive).

- ``findings``: what a rule may conclude (pure values)
- ``rules/``: one rule per module, each a pure ``update(state, fact, config) -> (state,
  findings)`` timed by the fact's device time; ``rules.RULES`` is the one ordered list
- ``runner``: applies the rules to each batch inside the batch's transaction, persists
  their state, stores and ledgers their findings, and logs a failing rule without stalling
  the others
"""
