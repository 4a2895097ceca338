"""Recipes: one module per family of shipped artifacts, each run as
``python -m backdoorbook.recipes.<name>``.

Every recipe module has a frozen ``Recipe`` dataclass (the settings that define its
artifacts), a ``train`` function and ``main(argv)``; every artifact's provenance names the
recipe module that made it (``recipe_module``) and the command, commit and source hashes
behind it (:func:`backdoorbook.artifacts.provenance`).

- :mod:`.ddpm_prior` — chapter 2's DDPM prior;
- :mod:`.zip_victims` — chapter 2's backdoored victims (and :func:`~.zip_victims.load_victim`);
- :mod:`.mini_sam` — chapter 1's foundation SAM; :mod:`.badsam_adapted` — its adapted models;
- :mod:`.iba_clean`, :mod:`.iba_models` — chapter 3's clean network and compared models;
- :mod:`.mini_clip` — chapter 4's clean miniature CLIP;
- :mod:`.flba_backbone` — chapter 5's Conv-4 backbone;
- :mod:`.cifar_targets` — chapter 6's targets and their ResNet-20 control.
"""
