"""Canvas views: the graph scene, its items and layout."""
