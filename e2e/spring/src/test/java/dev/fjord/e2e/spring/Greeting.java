package dev.fjord.e2e.spring;

import java.util.List;

/** The payload sent as JSON: a few field types, so a mangled value would not deserialize equal. */
public record Greeting(int seq, String text, List<String> tags, double weight) {}
