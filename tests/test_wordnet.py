"""WordNet 3.0 for NLTK, assembled from Debian's database in the data cache."""

import gzip
import re
from pathlib import Path

import pytest

from backdoorbook.data import wordnet as wn

MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")


def test_lexnames_lists_wordnet_30s_45_files_in_order():
    lines = wn.lexnames_text().splitlines()
    assert len(lines) == 45 and lines[0] == "00\tadj.all\t3" and lines[44] == "44\tadj.ppl\t3"
    assert lines[2] == "02\tadv.all\t4" and lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2" and lines[43] == "43\tverb.weather\t2"
    categories = {"adj": "3", "adv": "4", "noun": "1", "verb": "2"}
    assert all(c == categories[name.split(".")[0]] for _, name, c in map(str.split, lines))


@pytest.mark.skipif(not MAN_PAGE.is_file(), reason="WordNet's lexnames(5WN) man page not installed")
def test_lexnames_agree_with_wordnets_own_manual():
    table = re.findall(r"^(\d\d)\t(\S+)", gzip.open(MAN_PAGE, "rt").read(), flags=re.M)
    assert [f"{n}\t{name}" for n, name in table] == [
        "\t".join(line.split("\t")[:2]) for line in wn.lexnames_text().splitlines()
    ]


def test_wordnet_folder_is_built_once_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKDOORBOOK_CACHE", str(tmp_path / "cache"))
    folder = wn.wordnet_dir()
    assert folder == tmp_path / "cache" / "nltk_data" / "corpora" / "wordnet"
    assert sorted(p.name for p in folder.iterdir()) == sorted((*wn.DATABASE_FILES, "lexnames"))
    assert (folder / "lexnames").read_text() == wn.lexnames_text()
    assert (folder / "data.noun").stat().st_size == (wn.DEBIAN_WORDNET / "data.noun").stat().st_size
    stamp = (folder / "index.adv").stat().st_mtime_ns
    assert wn.wordnet_dir() == folder and (folder / "index.adv").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".wordnet-")]


def test_a_missing_debian_database_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKDOORBOOK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="run make setup"):
        wn.wordnet_dir(tmp_path / "no-wordnet")


def test_the_reader_finds_synonyms_of_caption_words():
    reader = wn.wordnet()
    assert reader.get_version() == "3.0" and wn.wordnet() is reader
    lemmas = {name for s in reader.synsets("photo") for name in s.lemma_names()}
    assert {"photograph", "picture", "pic", "exposure"} <= lemmas
    assert "frankfurter" in {n for s in reader.synsets("hotdog") for n in s.lemma_names()}
    assert reader.synsets("golden_retriever")[0].lexname() == "noun.animal"
    assert reader.synsets("bright", pos="a") and not reader.synsets("of")
