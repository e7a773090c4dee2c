"""The Gemini v1beta request messages, as data.

Each message maps its lowerCamelCase field names to a field spec. The walker in
:mod:`gemgate.types.validate` accepts snake_case too and returns camelCase.

Field specs:
    "string" | "int" | "number" | "bool" | "bytes"   scalars (proto3 JSON rules)
    "struct"          a free-form JSON object, kept exactly as sent (keys never renamed)
    "value"           any JSON value, kept as sent
    ("enum", NAME)    an enum from ENUMS, by name or number; normalised to the name
    ("msg", NAME)     a nested message from MESSAGES
    ("list", SPEC)    a JSON array of SPEC

Messages listed in OPEN accept fields this table does not know and pass them through
untouched: they are configuration blocks where Google adds options often and the gateway
acts on none of them. Every other message rejects an unknown field, as Google does.
"""

from __future__ import annotations

from typing import Any

Spec = Any

ENUMS: dict[str, tuple[str, ...]] = {
    # position == proto number
    "HarmCategory": (
        "HARM_CATEGORY_UNSPECIFIED", "HARM_CATEGORY_DEROGATORY", "HARM_CATEGORY_TOXICITY",
        "HARM_CATEGORY_VIOLENCE", "HARM_CATEGORY_SEXUAL", "HARM_CATEGORY_MEDICAL",
        "HARM_CATEGORY_DANGEROUS", "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_CIVIC_INTEGRITY",
    ),
    "HarmBlockThreshold": (
        "HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE",
        "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF",
    ),
    "Modality": ("MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO"),
    "Mode": ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"),
    "MediaResolution": (
        "MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM",
        "MEDIA_RESOLUTION_HIGH",
    ),
    "Language": ("LANGUAGE_UNSPECIFIED", "PYTHON"),
    "Outcome": (
        "OUTCOME_UNSPECIFIED", "OUTCOME_OK", "OUTCOME_FAILED", "OUTCOME_DEADLINE_EXCEEDED",
    ),
    "TaskType": (
        "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
        "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    ),
    "ThinkingLevel": ("THINKING_LEVEL_UNSPECIFIED", "LOW", "HIGH", "MEDIUM", "MINIMAL"),
    "Behavior": ("UNSPECIFIED", "BLOCKING", "NON_BLOCKING"),
}


def enum(name: str) -> Spec:
    return ("enum", name)


def msg(name: str) -> Spec:
    return ("msg", name)


def lst(spec: Spec) -> Spec:
    return ("list", spec)


MESSAGES: dict[str, dict[str, Spec]] = {
    "GenerateContentRequest": {
        "model": "string",
        "contents": lst(msg("Content")),
        "systemInstruction": msg("Content"),
        "tools": lst(msg("Tool")),
        "toolConfig": msg("ToolConfig"),
        "safetySettings": lst(msg("SafetySetting")),
        "generationConfig": msg("GenerationConfig"),
        "cachedContent": "string",
        "labels": "struct",
        "serviceTier": "value",
        "store": "bool",
        "continuationToken": "string",  # the next hop of an answer that ended in CONTINUATION
    },
    "Content": {"role": "string", "parts": lst(msg("Part"))},
    "Part": {
        "text": "string",
        "inlineData": msg("Blob"),
        "fileData": msg("FileData"),
        "functionCall": msg("FunctionCall"),
        "functionResponse": msg("FunctionResponse"),
        "executableCode": msg("ExecutableCode"),
        "codeExecutionResult": msg("CodeExecutionResult"),
        "thought": "bool",
        "thoughtSignature": "bytes",
        "videoMetadata": msg("VideoMetadata"),
        "mediaResolution": "value",
        "partMetadata": "struct",
    },
    "Blob": {"mimeType": "string", "data": "bytes", "displayName": "string"},
    "FileData": {"mimeType": "string", "fileUri": "string", "displayName": "string"},
    "FunctionCall": {"id": "string", "name": "string", "args": "struct"},
    "FunctionResponse": {
        "id": "string",
        "name": "string",
        "response": "struct",
        "parts": lst("struct"),
        "willContinue": "bool",
        "scheduling": "value",
    },
    "ExecutableCode": {"language": enum("Language"), "code": "string", "id": "string"},
    "CodeExecutionResult": {"outcome": enum("Outcome"), "output": "string", "id": "string"},
    "VideoMetadata": {"startOffset": "value", "endOffset": "value", "fps": "number"},
    "Tool": {
        "functionDeclarations": lst(msg("FunctionDeclaration")),
        "googleSearch": "struct",
        "googleSearchRetrieval": "struct",
        "codeExecution": "struct",
        "urlContext": "struct",
        "computerUse": "struct",
        "fileSearch": "struct",
        "googleMaps": "struct",
        "mcpServers": "value",
    },
    "FunctionDeclaration": {
        "name": "string",
        "description": "string",
        "behavior": enum("Behavior"),
        "parameters": "struct",
        "parametersJsonSchema": "value",
        "response": "struct",
        "responseJsonSchema": "value",
    },
    "ToolConfig": {
        "functionCallingConfig": msg("FunctionCallingConfig"),
        "retrievalConfig": "struct",
        "includeServerSideToolInvocations": "bool",
    },
    "FunctionCallingConfig": {"mode": enum("Mode"), "allowedFunctionNames": lst("string")},
    "SafetySetting": {"category": enum("HarmCategory"), "threshold": enum("HarmBlockThreshold")},
    "GenerationConfig": {
        "candidateCount": "int",
        "stopSequences": lst("string"),
        "maxOutputTokens": "int",
        "temperature": "number",
        "topP": "number",
        "topK": "number",
        "seed": "int",
        "presencePenalty": "number",
        "frequencyPenalty": "number",
        "responseMimeType": "string",
        "responseSchema": "struct",
        "responseJsonSchema": "value",
        "responseModalities": lst(enum("Modality")),
        "responseLogprobs": "bool",
        "logprobs": "int",
        "enableEnhancedCivicAnswers": "bool",
        "speechConfig": msg("SpeechConfig"),
        "thinkingConfig": msg("ThinkingConfig"),
        "imageConfig": msg("ImageConfig"),
        "mediaResolution": enum("MediaResolution"),
        "audioTimestamp": "bool",
    },
    "ThinkingConfig": {
        "includeThoughts": "bool",
        "thinkingBudget": "int",
        "thinkingLevel": enum("ThinkingLevel"),
    },
    "ImageConfig": {"aspectRatio": "string", "imageSize": "string"},
    "SpeechConfig": {},
    "CountTokensRequest": {
        "contents": lst(msg("Content")),
        "generateContentRequest": msg("GenerateContentRequest"),
    },
    "EmbedContentRequest": {
        "model": "string",
        "content": msg("Content"),
        "taskType": enum("TaskType"),
        "title": "string",
        "outputDimensionality": "int",
    },
    "BatchEmbedContentsRequest": {"requests": lst(msg("EmbedContentRequest"))},
}

OPEN = frozenset({"SpeechConfig", "ImageConfig", "VideoMetadata", "ToolConfig"})

# Which message each method's body is.
REQUEST_MESSAGE = {
    "generateContent": "GenerateContentRequest",
    "streamGenerateContent": "GenerateContentRequest",
    "countTokens": "CountTokensRequest",
    "embedContent": "EmbedContentRequest",
    "batchEmbedContents": "BatchEmbedContentsRequest",
}
