"""`egoworld play`: walk through any picture with a world model, in the browser.

    controls.py   what the page steers a model with (keys for navigation, sliders otherwise)
    engine.py     the shared model, run chunk by chunk on one worker thread
    session.py    one page's walk: frames, actions, chunks, queued presses, undo/reset, downloads
    samples.py    bundled start images (generated-world frames, procedurally painted pictures)
    server.py     FastAPI app: the page, a WebSocket per session, uploads, downloads
    static/       index.html, play.js, play.css (no build step) and the sample PNGs

See docs/play.md.
"""
