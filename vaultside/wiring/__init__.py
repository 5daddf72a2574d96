"""The composition root: turns ``Settings`` into objects. The only package that chooses
implementations; everything else receives what it needs in its constructor.

- ``server``: ``build_services`` (everything ``vaultside serve`` runs);
- ``storage``: storage kinds; ``seal``: seal kinds; ``audit``: audit sinks and keys;
- ``sources``: secret reference schemes; ``brokers``: Vault/OpenBao connections;
- ``rotation``: rotation targets and generators; ``scan``: scan sources and reporters.

Every extension point is a ``{kind: factory}`` registry (``vaultside.registry``). Callers import
the submodule they need: ``vaultside scan`` must not load the server stack.
"""
