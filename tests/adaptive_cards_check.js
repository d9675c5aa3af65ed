// Parses Adaptive Cards with Microsoft's own parser (npm `adaptivecards`, the renderer Teams
// builds on) and prints what it objects to. Used by tests/adaptive_cards.py.
//
// Input on stdin: a JSON array of card objects (each the `content` of an attachment).
// Output on stdout: a JSON array with, per card, a list of problem strings (empty: valid).
// The UMD bundle in dist/ loads in Node without a DOM; parsing and validating need none.
"use strict";

const path = require("path");
const AdaptiveCards = require(
  path.join(__dirname, "node_modules", "adaptivecards", "dist", "adaptivecards.js"),
);

function problems(json) {
  const found = [];
  const card = new AdaptiveCards.AdaptiveCard();
  // Teams renders cards up to version 1.5: anything newer is parsed as unknown.
  const context = new AdaptiveCards.SerializationContext(AdaptiveCards.Versions.v1_5);
  card.parse(json, context);
  for (let i = 0; i < context.eventCount; i++) {
    const event = context.getEventAt(i);
    found.push(`${AdaptiveCards.ValidationEvent[event.event]}: ${event.message}`);
  }
  for (const event of card.validateProperties().validationEvents) {
    found.push(`${AdaptiveCards.ValidationEvent[event.event]}: ${event.message}`);
  }
  return found;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  const cards = JSON.parse(input);
  process.stdout.write(JSON.stringify(cards.map(problems)));
});
