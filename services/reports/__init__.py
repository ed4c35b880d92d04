"""How work and results are shown to people: progress bars on a stream and self-contained HTML pages.

Shared by the CLI and the offline training code, so it imports neither, nor gRPC or TensorFlow;
Pillow (a server-only package) is imported only when a thumbnail is made.
"""
