"""Jobs: the workflows that read the graph, call the pure layers with explicit values, write
artefacts and write back. Each takes a store, a retriever, a :class:`WorkspaceLayout` and a
typed config section, and returns a typed result; the workspace and the pipeline call them."""
