"""WordNet 3.0 for NLTK, built from Debian's packaged database; nothing is downloaded.

WordNet (Miller, "WordNet: A Lexical Database for English", Communications of the ACM 38(11),
1995; Fellbaum (ed.), "WordNet: An Electronic Lexical Database", MIT Press, 1998) is the
synonym source of EDA's synonym replacement and random insertion (Wei & Zou, EMNLP 2019,
arXiv 1901.11196), which CleanCLIP uses to augment captions.

Debian's packages ``wordnet-base`` and ``wordnet-sense-index`` (``make setup`` installs them)
put the WordNet 3.0 database in :data:`DEBIAN_WORDNET`. NLTK's
:class:`~nltk.corpus.reader.WordNetCorpusReader` reads that database from
``<nltk_data>/corpora/wordnet/`` once it also finds a ``lexnames`` file, the list of the 45
lexicographer files (WordNet's ``lexnames(5WN)``), which Debian leaves out. :func:`wordnet`
builds that folder once in the data cache (:func:`backdoorbook.data.cache.cache_dir`), from
the Debian files and :data:`LEXNAMES`, and returns the reader.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from .cache import cache_dir

#: Where Debian's ``wordnet-base`` and ``wordnet-sense-index`` install the WordNet 3.0 database.
DEBIAN_WORDNET = Path("/usr/share/wordnet")
#: Database files NLTK's reader opens (all but ``lexnames``, which :func:`wordnet_dir` writes).
DATABASE_FILES = (
    "cntlist.rev",
    "index.sense",
    *(f"{kind}.{pos}" for kind in ("index", "data") for pos in ("adj", "adv", "noun", "verb")),
    *(f"{pos}.exc" for pos in ("adj", "adv", "noun", "verb")),
)
#: WordNet 3.0's lexicographer files in file-number order, with their syntactic category
#: (1 noun, 2 verb, 3 adjective, 4 adverb), as listed in ``lexnames(5WN)``.
LEXNAMES = (
    ("adj.all", 3),
    ("adj.pert", 3),
    ("adv.all", 4),
    *(
        (f"noun.{name}", 1)
        for name in (
            "Tops act animal artifact attribute body cognition communication event feeling food "
            "group location motive object person phenomenon plant possession process quantity "
            "relation shape state substance time"
        ).split()
    ),
    *(
        (f"verb.{name}", 2)
        for name in (
            "body change cognition communication competition consumption contact creation "
            "emotion motion perception possession social stative weather"
        ).split()
    ),
    ("adj.ppl", 3),
)


def nltk_data_dir() -> Path:
    """The ``nltk_data`` folder in the data cache that holds ``corpora/wordnet``."""
    return cache_dir() / "nltk_data"


def lexnames_text() -> str:
    """The ``lexnames`` file: ``"NN<TAB>name<TAB>category"`` per line, numbered from 00."""
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def wordnet_dir(source: Path = DEBIAN_WORDNET) -> Path:
    """``<nltk_data>/corpora/wordnet`` in the data cache, built from ``source`` on first use.

    Raises ``FileNotFoundError`` (naming the missing files) when the Debian database is not
    installed. The folder is assembled next to its final place and renamed into it, so an
    interrupted build never leaves a half-filled folder behind.
    """
    target = nltk_data_dir() / "corpora" / "wordnet"
    if all((target / name).is_file() for name in (*DATABASE_FILES, "lexnames")):
        return target
    missing = [name for name in DATABASE_FILES if not (Path(source) / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"WordNet 3.0 is not installed in {source} (missing {', '.join(missing)}); it comes "
            "from Debian's packages wordnet-base and wordnet-sense-index: run make setup"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        for name in DATABASE_FILES:
            shutil.copyfile(Path(source) / name, staging / name)
        (staging / "lexnames").write_text(lexnames_text())
        if target.exists():
            shutil.rmtree(target)  # an incomplete earlier build
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@functools.cache
def wordnet(source: Path = DEBIAN_WORDNET):
    """NLTK's :class:`~nltk.corpus.reader.WordNetCorpusReader` on WordNet 3.0 (built once per
    process; loading the indices takes a few seconds)."""
    import nltk
    from nltk.corpus.reader import WordNetCorpusReader

    folder = wordnet_dir(Path(source))
    root = str(nltk_data_dir().resolve())
    if root not in nltk.data.path:
        nltk.data.path.append(root)  # NLTK reads corpora only below its data roots
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions")
        return WordNetCorpusReader(str(folder.resolve()), None)
