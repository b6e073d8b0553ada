"""Items: the things to annotate (chat turns, paragraphs), ordered by `sequence` in their container."""
