"""botwire as an MCP server: key-value tools, resources and the knowledge-graph drop-in.

Needs the official ``mcp`` SDK (``pip install 'botwire[mcp]'``); nothing here is
imported by ``import botwire``.

==============  =====================================================================
module          what
==============  =====================================================================
``server``      ``build_server(Access(...))``: the ``MCPServer``; ``serve_stdio``
                (``botwire mcp``)
``http``        ``HttpMount``: ``/mcp`` in ``botwire serve`` (Streamable HTTP)
``graph``       the knowledge graph in a namespace (compare-and-set), ``import_graph``
``graph_tools`` the reference memory server's nine tools over it (schemas, shapes)
``_access``     which namespace a call uses and who may use it; errors as MCP errors
``_kv``         remember, recall, forget, list_memories, append, increment
``_resources``  ``botwire://{namespace}/{key}`` resources, paged listing, subscriptions
==============  =====================================================================
"""
