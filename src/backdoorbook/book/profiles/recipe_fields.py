"""The marker for profile fields that define a shipped model (see
:func:`backdoorbook.book.profiles.recipe_of`)."""

#: ``dataclasses.field`` metadata of a field that belongs to the recipe of a shipped model.
RECIPE = {"recipe": True}
