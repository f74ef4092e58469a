"""Lip-synced drafts on the CPU: find the face once, read the mouth's opening from the voice,
and move the lower face frame by frame.

- `face`: MediaPipe's face detector and face mesh (TFLite, run by ai-edge-litert), the largest
  face, or a plain-words reason why this portrait gets no lip movement.
- `voice`: one mouth-opening value per video frame from the voice-over's loudness.
- `mouth`: the lower face re-rendered for one opening (jaw drop, dark mouth, a hint of teeth).
"""
