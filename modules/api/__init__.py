"""REST API of the registry, one module per resource.

Each view serves one resource; each HTTP method on it is one action that
validates its input with its own serializer, calls one selector or service
and returns its own output serializer. Private modules answer 404 to anyone
but their owner, so their existence does not leak.

``base_models``, ``collection`` (search and upload), ``detail`` (one module,
its files and likes) and ``tags`` hold the views; ``serializers`` the module
output and ``common`` what they share (``visible_module``, ``field_errors``,
the name and tag fields), which other apps' APIs import too.
"""
