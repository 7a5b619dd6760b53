"""The syncbed terminal UI: watch, steer and replay the flows.

``syncbed tui [SCENARIO] [--seed N] [--chaos ...]`` runs a world live;
``syncbed tui --trace FILE`` replays a recorded run. `launch.build_app`
turns those arguments into a `app.SyncbedApp` (or one `InputError`).

Layers, top down: the app and its screens and widgets (Textual, asyncio,
the main thread); the `session` (what the UI knows at the moment it shows,
folded from events); the `sources` (a live world, a recorded trace); the
`host` (the simulation thread, trio); below them the harness and the
simulator -- which this package imports, and never the other way round.
"""
