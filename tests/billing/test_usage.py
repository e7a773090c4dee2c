"""Usage.from_metadata: Gemini's usageMetadata into counts by modality."""

from __future__ import annotations

from gemgate.billing import Usage


def test_prompt_and_candidates_default_to_text_without_details() -> None:
    u = Usage.from_metadata(
        {"promptTokenCount": 12, "candidatesTokenCount": 30, "totalTokenCount": 42}
    )
    assert (u.prompt_text, u.prompt_total, u.output_text, u.total) == (12, 12, 30, 42)
    assert u.cached_total == 0 and u.thoughts == 0 and not u.estimated


def test_details_split_by_modality() -> None:
    u = Usage.from_metadata(
        {
            "promptTokenCount": 1100,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 100},
                {"modality": "IMAGE", "tokenCount": 258},
                {"modality": "VIDEO", "tokenCount": 263},
                {"modality": "AUDIO", "tokenCount": 320},
                {"modality": "DOCUMENT", "tokenCount": 159},
            ],
            "cachedContentTokenCount": 400,
            "cacheTokensDetails": [
                {"modality": "AUDIO", "tokenCount": 300},
                {"modality": "TEXT", "tokenCount": 100},
            ],
            "candidatesTokenCount": 1300,
            "candidatesTokensDetails": [
                {"modality": "TEXT", "tokenCount": 10},
                {"modality": "IMAGE", "tokenCount": 1290},
            ],
            "thoughtsTokenCount": 77,
            "totalTokenCount": 2477,
        }
    )
    assert (u.prompt_text, u.prompt_image, u.prompt_video, u.prompt_audio, u.prompt_document) == (
        100,
        258,
        263,
        320,
        159,
    )
    assert u.prompt_total == 1100
    assert u.cached_total == 400
    assert u.cached_by_modality == {
        "TEXT": 100,
        "IMAGE": 0,
        "AUDIO": 300,
        "VIDEO": 0,
        "DOCUMENT": 0,
    }
    assert (u.output_text, u.output_image, u.output_audio, u.thoughts) == (10, 1290, 0, 77)
    assert u.candidates_total == 1300
    assert u.total == 2477


def test_shortfall_of_details_goes_to_text() -> None:
    u = Usage.from_metadata(
        {
            "promptTokenCount": 1000,
            "promptTokensDetails": [{"modality": "IMAGE", "tokenCount": 258}],
            "cachedContentTokenCount": 500,
        }
    )
    assert (u.prompt_image, u.prompt_text) == (258, 742)
    assert (u.cached_total, u.cached_text) == (500, 500)


def test_tool_use_prompt() -> None:
    u = Usage.from_metadata(
        {
            "promptTokenCount": 10,
            "toolUsePromptTokenCount": 50,
            "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 50}],
            "candidatesTokenCount": 5,
        }
    )
    assert (u.tool_use_prompt, u.tool_use_text) == (50, 50)
    assert u.context_tokens == 60
    # no totalTokenCount: computed as prompt + candidates + toolUsePrompt + thoughts
    assert u.total == 65


def test_garbage_never_raises() -> None:
    assert Usage.from_metadata(None) == Usage()
    assert Usage.from_metadata("nope") == Usage()
    assert Usage.from_metadata([1, 2]) == Usage()
    u = Usage.from_metadata(
        {
            "promptTokenCount": "oops",
            "candidatesTokenCount": -5,
            "thoughtsTokenCount": True,
            "cachedContentTokenCount": 2.5,
            "totalTokenCount": None,
            "promptTokensDetails": "not a list",
            "candidatesTokensDetails": [
                None,
                7,
                {"modality": "IMAGE", "tokenCount": "many"},
                {"modality": {"x": 1}, "tokenCount": 4},
                {"tokenCount": 3},
            ],
        }
    )
    assert u.prompt_total == 0 and u.cached_total == 0 and u.thoughts == 0
    # the two well-formed counts land on TEXT (unknown/missing modality)
    assert (u.output_text, u.output_image) == (7, 0)
    assert u.total == 7


def test_lenient_number_forms_and_enum_numbers() -> None:
    u = Usage.from_metadata(
        {
            "promptTokenCount": "20",  # int64-style string
            "promptTokensDetails": [
                {"modality": 4, "tokenCount": 15},  # AUDIO as a proto enum number
                {"modality": "text", "tokenCount": 5.0},
            ],
            "candidatesTokenCount": 3,
        }
    )
    assert (u.prompt_audio, u.prompt_text, u.output_text) == (15, 5, 3)


def test_snake_case_is_accepted() -> None:
    u = Usage.from_metadata(
        {
            "prompt_token_count": 8,
            "cached_content_token_count": 2,
            "candidates_token_count": 4,
            "thoughts_token_count": 1,
        }
    )
    assert (u.prompt_total, u.cached_total, u.output_text, u.thoughts, u.total) == (8, 2, 4, 1, 13)


def test_estimated_flag_and_record() -> None:
    u = Usage.from_metadata({"promptTokenCount": 3, "candidatesTokenCount": 4}, estimated=True)
    record = u.as_record()
    assert record["estimated"] == 1
    assert record["prompt_text"] == 3 and record["output_text"] == 4 and record["total"] == 7
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in record.values())
    assert set(record) >= {
        "prompt_text",
        "prompt_image",
        "prompt_audio",
        "prompt_video",
        "prompt_document",
        "cached_total",
        "cached_audio",
        "tool_use_prompt",
        "thoughts",
        "output_text",
        "output_image",
        "output_audio",
        "total",
        "estimated",
    }
