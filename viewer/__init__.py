"""mp3d's interactive viewer, built on viser: `mp3d view PATH...` in a browser.

Installed with mp3d and imported as ``mp3d.viewer``: pyproject.toml maps that package onto
this top-level folder (setuptools package-dir), in editable and regular installs alike.

Modules, one job each: cameras (viser <-> mp3d camera conversion), progressive (render on
move), layers (what a shown item provides), geometry (meshes, point clouds), splats
(Gaussian splat PLY and checkpoints), fields (NeRF/DVR checkpoints, rendered on the server),
bodies (SMPL with sliders, body fits), datasets (Blender/COLMAP cameras), kinds (which layer
a path opens as), app (the Viewer), live (the model being trained, through
mp3d.training.OBSERVERS), cli (`mp3d view`).
"""
