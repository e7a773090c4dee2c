"""Protocol translation between the canonical Gemini wire JSON and other protocols.

Pure functions and small stateful stream converters, no I/O. Shared by the doors (client
protocol -> Gemini) and the providers (Gemini -> upstream protocol), which never import
each other.

OpenAI chat/completions:

- :func:`chat_to_gemini` / :func:`gemini_to_chat`: requests, each way.
- :func:`gemini_to_chat_response` / :func:`chat_response_to_gemini`: complete answers.
- :class:`ChatStreamEncoder` (Gemini chunks -> OpenAI chunks, door side) and
  :class:`ChatStreamDecoder` (OpenAI chunks -> Gemini chunks, provider side).
"""

from gemgate.translate.gemini_request import gemini_to_chat, schema_to_json_schema
from gemgate.translate.openai_common import usage_to_gemini, usage_to_openai
from gemgate.translate.openai_params import REASONING_BUDGET
from gemgate.translate.openai_request import chat_to_gemini
from gemgate.translate.openai_response import chat_response_to_gemini, gemini_to_chat_response
from gemgate.translate.openai_stream import ChatStreamDecoder, ChatStreamEncoder

__all__ = [
    "REASONING_BUDGET",
    "ChatStreamDecoder",
    "ChatStreamEncoder",
    "chat_response_to_gemini",
    "chat_to_gemini",
    "gemini_to_chat",
    "gemini_to_chat_response",
    "schema_to_json_schema",
    "usage_to_gemini",
    "usage_to_openai",
]
