#version 330 core
// Lash lines: thin strips on the skin along the upper lid margins (see renderer.py),
// their positions already pulled a little towards the camera so the face's own depth
// lets them through wherever the skin under them is visible.
uniform mat4 u_proj;
uniform vec3 u_lash;
in vec3 a_pos;
in float a_alpha;   // opaque at the margin, fading towards the strip's outer edge
out vec4 v_rgba;

void main() {
    v_rgba = vec4(u_lash, a_alpha);
    gl_Position = u_proj * vec4(a_pos, 1.0);
}
