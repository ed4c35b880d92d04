"""Channels beside the CNN vectors: ImageNet classes with their WordNet ancestors (taxonomy), faces
(people) and colour shares."""
